//! `google.api.http` annotations read into bindings: one per HTTP rule
//! (additional bindings included) of every RPC of the requested services.
//! Both the edge's router and the OpenAPI document are built from these.

use prost_reflect::{
    DescriptorPool, DynamicMessage, ExtensionDescriptor, FieldDescriptor, Kind, MessageDescriptor,
    MethodDescriptor, Value,
};

use crate::EdgeError;
use crate::descriptors::HTTP_RULE_OPTION;

/// One REST route of one RPC.
#[derive(Debug, Clone)]
pub struct Binding {
    pub method: MethodDescriptor,
    pub verb: http::Method,
    /// The path template as annotated, e.g. `/v1/operators/{op_name}`.
    pub template: String,
    pub segments: Vec<Segment>,
    pub body: BodyRule,
    /// The output field that is the whole response body, if any.
    pub response_body: Option<FieldDescriptor>,
}

#[derive(Debug, Clone)]
pub enum Segment {
    Literal(String),
    /// `{name}` bound to a (possibly nested) singular scalar request field.
    Variable {
        name: String,
        path: Vec<FieldDescriptor>,
    },
}

#[derive(Debug, Clone)]
pub enum BodyRule {
    /// No body (GET and friends): non-path fields come from the query.
    None,
    /// `body: "*"`: every field not bound by the path.
    Whole,
    /// `body: "field"`: the body is that field's JSON value.
    Field(FieldDescriptor),
}

impl Binding {
    /// `/package.Service/Method`.
    pub fn grpc_path(&self) -> String {
        format!(
            "/{}/{}",
            self.method.parent_service().full_name(),
            self.method.name()
        )
    }

    /// Variables in template order: (name, field path).
    pub fn variables(&self) -> impl Iterator<Item = (&str, &[FieldDescriptor])> {
        self.segments.iter().filter_map(|segment| match segment {
            Segment::Variable { name, path } => Some((name.as_str(), path.as_slice())),
            Segment::Literal(_) => None,
        })
    }

    /// Top-level request fields bound whole by a path variable; they are not
    /// accepted in a `*` body.
    pub fn path_bound_fields(&self) -> Vec<FieldDescriptor> {
        self.variables()
            .filter_map(|(_, path)| match path {
                [field] => Some(field.clone()),
                _ => None,
            })
            .collect()
    }

    /// Top-level request fields filled from query parameters: scalar and
    /// enum fields (repeated allowed) that are neither path-bound nor the
    /// body. A `*` body leaves none.
    pub fn query_fields(&self) -> Vec<FieldDescriptor> {
        let body_field = match &self.body {
            BodyRule::Whole => return Vec::new(),
            BodyRule::Field(field) => Some(field.clone()),
            BodyRule::None => None,
        };
        let bound = self.path_bound_fields();
        crate::descriptors::fields_in_order(&self.method.input())
            .into_iter()
            .filter(|field| !field.is_map() && !matches!(field.kind(), Kind::Message(_)))
            .filter(|field| !bound.contains(field) && body_field.as_ref() != Some(field))
            .collect()
    }

    /// The route path with positional variable names (`/v1/operators/{v0}`),
    /// so bindings that differ only in variable names share one route.
    pub fn router_path(&self) -> String {
        let mut index = 0;
        let parts: Vec<String> = self
            .segments
            .iter()
            .map(|segment| match segment {
                Segment::Literal(text) => text.clone(),
                Segment::Variable { .. } => {
                    let part = format!("{{v{index}}}");
                    index += 1;
                    part
                }
            })
            .collect();
        format!("/{}", parts.join("/"))
    }

    /// The OpenAPI path: the template with plain `{name}` variables.
    pub fn openapi_path(&self) -> String {
        self.path_with(|name| format!("{{{name}}}"))
    }

    /// A path a request can be sent to: every variable replaced by `value`.
    pub fn concrete_path(&self, value: &str) -> String {
        self.path_with(|_| value.to_owned())
    }

    fn path_with(&self, variable: impl Fn(&str) -> String) -> String {
        let parts: Vec<String> = self
            .segments
            .iter()
            .map(|segment| match segment {
                Segment::Literal(text) => text.clone(),
                Segment::Variable { name, .. } => variable(name),
            })
            .collect();
        format!("/{}", parts.join("/"))
    }
}

/// Every binding of the named services, in service then declaration order.
pub fn bindings(pool: &DescriptorPool, services: &[&str]) -> Result<Vec<Binding>, EdgeError> {
    let extension = pool
        .get_extension_by_name(HTTP_RULE_OPTION)
        .ok_or_else(|| EdgeError::MissingDescriptor(HTTP_RULE_OPTION.to_owned()))?;
    let mut out = Vec::new();
    for name in services {
        let service = pool
            .get_service_by_name(name)
            .ok_or_else(|| EdgeError::UnknownService((*name).to_owned()))?;
        for method in service.methods() {
            for rule in rules_of(&method, &extension) {
                out.push(binding(&method, &rule)?);
            }
        }
    }
    Ok(out)
}

/// The method's HTTP rule and its additional bindings.
fn rules_of(method: &MethodDescriptor, extension: &ExtensionDescriptor) -> Vec<DynamicMessage> {
    let options = method.options();
    if !options.has_extension(extension) {
        return Vec::new();
    }
    let Some(rule) = options.get_extension(extension).as_message().cloned() else {
        return Vec::new();
    };
    let mut rules = Vec::new();
    if let Some(Value::List(extra)) = rule.get_field_by_name("additional_bindings").as_deref() {
        rules.extend(extra.iter().filter_map(|v| v.as_message().cloned()));
    }
    rules.insert(0, rule);
    rules
}

fn text_field(rule: &DynamicMessage, name: &str) -> String {
    match rule.get_field_by_name(name).as_deref() {
        Some(Value::String(text)) => text.clone(),
        _ => String::new(),
    }
}

fn binding(method: &MethodDescriptor, rule: &DynamicMessage) -> Result<Binding, EdgeError> {
    let invalid = |reason: String| EdgeError::InvalidHttpRule {
        method: method.full_name().to_owned(),
        reason,
    };
    // Server streaming maps to Server-Sent Events; a client stream has no
    // REST request to come from.
    if method.is_client_streaming() {
        return Err(invalid("client-streaming RPCs have no REST mapping".into()));
    }
    if rule.has_field_by_name("custom") {
        return Err(invalid("custom HTTP verbs are not supported".into()));
    }
    let verbs = [
        ("get", http::Method::GET),
        ("put", http::Method::PUT),
        ("post", http::Method::POST),
        ("delete", http::Method::DELETE),
        ("patch", http::Method::PATCH),
    ];
    let (verb, template) = verbs
        .into_iter()
        .find(|(name, _)| rule.has_field_by_name(name))
        .map(|(name, verb)| (verb, text_field(rule, name)))
        .ok_or_else(|| invalid("no HTTP pattern".into()))?;

    let input = method.input();
    let segments = parse_template(&template, &input).map_err(invalid)?;

    let body = match text_field(rule, "body").as_str() {
        "" => BodyRule::None,
        "*" => BodyRule::Whole,
        name => {
            let field = input
                .get_field_by_name(name)
                .ok_or_else(|| invalid(format!("body field `{name}` does not exist")))?;
            BodyRule::Field(field)
        }
    };
    if verb == http::Method::GET && !matches!(body, BodyRule::None) {
        return Err(invalid("a GET rule cannot take a body".into()));
    }
    let response_body = match text_field(rule, "response_body").as_str() {
        "" => None,
        name => Some(
            method
                .output()
                .get_field_by_name(name)
                .ok_or_else(|| invalid(format!("response_body field `{name}` does not exist")))?,
        ),
    };
    let binding = Binding {
        method: method.clone(),
        verb,
        template,
        segments,
        body,
        response_body,
    };
    if let BodyRule::Field(field) = &binding.body
        && binding.path_bound_fields().contains(field)
    {
        return Err(invalid(format!(
            "body field `{}` is also bound by the path",
            field.name()
        )));
    }
    Ok(binding)
}

/// Parses `/literal/{field.path}/...`. Wildcards (`*`, `**`), variables
/// with sub-patterns other than `*`, and verb suffixes are refused.
fn parse_template(template: &str, input: &MessageDescriptor) -> Result<Vec<Segment>, String> {
    let rest = template
        .strip_prefix('/')
        .ok_or_else(|| format!("path `{template}` must start with `/`"))?;
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let mut segments = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for part in rest.split('/') {
        if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            let (name, pattern) = match inner.split_once('=') {
                Some((name, pattern)) => (name, Some(pattern)),
                None => (inner, None),
            };
            if pattern.is_some_and(|p| p != "*") {
                return Err(format!("variable pattern in `{part}` is not supported"));
            }
            if names.iter().any(|n| n == name) {
                return Err(format!("variable `{name}` appears twice"));
            }
            let path = resolve_field_path(input, name)?;
            names.push(name.to_owned());
            segments.push(Segment::Variable {
                name: name.to_owned(),
                path,
            });
        } else if part.is_empty() {
            return Err(format!("path `{template}` has an empty segment"));
        } else if part.contains(['{', '}', '*', ':']) {
            return Err(format!("path segment `{part}` is not supported"));
        } else {
            segments.push(Segment::Literal(part.to_owned()));
        }
    }
    Ok(segments)
}

/// `a.b.c` → the fields a, b, c; every step but the last is a singular
/// message, the last a singular non-message field.
fn resolve_field_path(
    input: &MessageDescriptor,
    name: &str,
) -> Result<Vec<FieldDescriptor>, String> {
    let parts: Vec<&str> = name.split('.').collect();
    let mut message = input.clone();
    let mut path = Vec::new();
    for (index, part) in parts.iter().enumerate() {
        let field = message
            .get_field_by_name(part)
            .ok_or_else(|| format!("path variable `{name}`: no field `{part}`"))?;
        if field.is_list() || field.is_map() {
            return Err(format!("path variable `{name}` names a repeated field"));
        }
        let last = index + 1 == parts.len();
        match (field.kind(), last) {
            (Kind::Message(inner), false) => message = inner,
            (Kind::Message(_), true) => {
                return Err(format!("path variable `{name}` names a message field"));
            }
            (_, false) => return Err(format!("path variable `{name}`: `{part}` is not a message")),
            (_, true) => {}
        }
        path.push(field);
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> DescriptorPool {
        DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET).expect("descriptor set")
    }

    #[test]
    fn every_pecr_rule_is_read() {
        let pool = pool();
        let found = bindings(
            &pool,
            &["pecr.v1.GatewayService", "pecr.v1.ControllerService"],
        )
        .expect("bindings");
        let summary: Vec<(String, String, String)> = found
            .iter()
            .map(|b| (b.verb.to_string(), b.template.clone(), b.router_path()))
            .collect();
        assert_eq!(summary.len(), 13);
        assert!(summary.contains(&(
            "POST".into(),
            "/v1/operators/{op_name}".into(),
            "/v1/operators/{v0}".into()
        )));
        let get_replay = found
            .iter()
            .find(|b| b.method.name() == "GetReplay")
            .expect("GetReplay");
        assert_eq!(
            get_replay.response_body.as_ref().map(|f| f.name()),
            Some("bundle")
        );
        let list = found
            .iter()
            .find(|b| b.method.name() == "ListReplays")
            .expect("ListReplays");
        let names: Vec<String> = list
            .query_fields()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        assert_eq!(names, ["limit", "engine_mode"]);
        let operator = found
            .iter()
            .find(|b| b.method.name() == "CallOperator")
            .expect("CallOperator");
        assert!(operator.query_fields().is_empty());
        assert_eq!(operator.path_bound_fields().len(), 1);
    }

    #[test]
    fn unknown_services_and_bad_templates_are_errors() {
        let pool = pool();
        assert_eq!(
            bindings(&pool, &["pecr.v1.Nope"]).err(),
            Some(EdgeError::UnknownService("pecr.v1.Nope".into()))
        );
        let input = pool
            .get_message_by_name("pecr.v1.CallOperatorRequest")
            .expect("message");
        assert!(parse_template("v1/x", &input).is_err());
        assert!(parse_template("/v1//x", &input).is_err());
        assert!(parse_template("/v1/{missing}", &input).is_err());
        assert!(parse_template("/v1/{op_name=a/*}", &input).is_err());
        assert!(parse_template("/v1/**", &input).is_err());
        assert!(parse_template("/v1/x:verb", &input).is_err());
        assert!(parse_template("/v1/{op_name}/{op_name}", &input).is_err());
        assert!(parse_template("/v1/{op_name=*}", &input).is_ok());
        assert!(parse_template("/", &input).is_ok_and(|s| s.is_empty()));
    }
}
