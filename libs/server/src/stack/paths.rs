//! What a request path says about the call: its gRPC service and method,
//! and whether it is one of the open protocols every port serves.

/// Health and reflection: probes and grpcurl use them without credentials,
/// and they are never shed, so an overloaded service still answers probes.
const OPEN_PREFIXES: [&str; 3] = [
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

pub(crate) fn is_open(path: &str) -> bool {
    OPEN_PREFIXES.iter().any(|prefix| path.starts_with(prefix))
}

/// `/pkg.Service/Method` split into service and method.
pub(crate) fn service_and_method(path: &str) -> Option<(&str, &str)> {
    path.strip_prefix('/')?.split_once('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_and_reflection_are_open_and_nothing_else_is() {
        assert!(is_open("/grpc.health.v1.Health/Check"));
        assert!(is_open(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
        ));
        assert!(!is_open("/pecr.v1.GatewayService/CallOperator"));
        assert!(!is_open("/grpc.health.v1.HealthX/Check"));
    }

    #[test]
    fn paths_split_into_service_and_method() {
        assert_eq!(
            service_and_method("/pecr.v1.LedgerService/GetSession"),
            Some(("pecr.v1.LedgerService", "GetSession"))
        );
        assert_eq!(service_and_method("nope"), None);
    }
}
