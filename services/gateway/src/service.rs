//! `pecr.v1.GatewayService`: validate → core → convert. The request stack
//! has authenticated the principal, applied its per-RPC rate limit and
//! counts every outcome; a batch's calls are charged here, by their number.

use std::sync::Arc;

use pecr_contracts::ids;
use pecr_errors::{ErrorCode, PecrError, PecrResult};
use pecr_proto::v1::{self, TerminalMode, gateway_service_server::GatewayService};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::config::RateLimits;
use crate::core::{Gateway, OperatorReply, PrincipalRequest};
use crate::operators::RequestedCall;
use crate::validate;
use pecr_auth::header;
use pecr_proto::v1::operator_outcome::Outcome;
use pecr_server::{RateLimiter, RateRule, RequestId, rate_limited};

pub struct GatewayApi {
    pub core: Arc<Gateway>,
    /// The limiter of the request stack, for the per-call charge of batches.
    pub limiter: Arc<RateLimiter>,
    pub limits: RateLimits,
}

/// The per-RPC quotas the request stack applies. `CallOperators` is
/// charged per call by its handler, since only its body says how many.
pub fn rate_rules(limits: &RateLimits) -> Vec<RateRule> {
    let rule = |method, bucket, limit, what| RateRule {
        method,
        bucket,
        limit,
        what,
    };
    vec![
        rule(
            "CreateSession",
            "sessions",
            limits.sessions,
            "session creation",
        ),
        rule(
            "SimulatePolicy",
            "simulate",
            limits.simulate,
            "policy simulation",
        ),
        rule(
            "CallOperator",
            "operators",
            limits.operators,
            "operator calls",
        ),
        rule("Finalize", "finalize", limits.finalize, "finalize calls"),
    ]
}

fn op_names(calls: &[v1::OperatorCall]) -> Vec<String> {
    calls
        .iter()
        .map(|call| call.op_name.trim().to_owned())
        .collect()
}

fn session_token(metadata: &MetadataMap) -> PecrResult<String> {
    header(metadata, "x-pecr-session-token").ok_or_else(|| {
        PecrError::new(ErrorCode::PolicyDenied, "missing or invalid session token").with_http(401)
    })
}

/// A decision on the wire; the redaction travels as canonical JSON text.
fn policy_decision(decision: pecr_policy::Decision) -> v1::PolicyDecision {
    v1::PolicyDecision {
        allow: decision.allow,
        cacheable: decision.cacheable,
        reason: decision.reason,
        redaction: decision
            .redaction
            .as_ref()
            .map(pecr_contracts::canonical_json),
    }
}

/// The principal the stack authenticated, with the call's request id.
fn caller<T>(request: &Request<T>) -> PecrResult<PrincipalRequest> {
    Ok(PrincipalRequest {
        principal: pecr_server::principal(request)?,
        request_id: RequestId::of(request),
    })
}

/// The answer, marked with its terminal mode for the route metrics.
fn answer<T>(result: PecrResult<(Response<T>, TerminalMode)>) -> Result<Response<T>, Status> {
    let (mut response, mode) = result?;
    response.extensions_mut().insert(mode);
    Ok(response)
}

impl GatewayApi {
    /// Every call of a batch counts against the principal's operator limit.
    fn check_operator_rate(&self, caller: &PrincipalRequest, calls: usize) -> PecrResult<()> {
        if calls == 0 {
            return Ok(());
        }
        let calls = u32::try_from(calls).unwrap_or(u32::MAX);
        if self.limiter.allow_n(
            &caller.principal.rate_key("operators"),
            self.limits.operators,
            calls,
        ) {
            Ok(())
        } else {
            Err(rate_limited("operator calls"))
        }
    }

    /// A batch's replies on the wire, each counted as a call of its operator.
    fn outcomes(
        &self,
        replies: Vec<PecrResult<OperatorReply>>,
        op_names: &[String],
    ) -> Vec<v1::OperatorOutcome> {
        replies
            .into_iter()
            .zip(op_names)
            .map(|(reply, op_name)| {
                self.core.metrics.operator_call(op_name, reply.is_ok());
                let outcome = match reply {
                    Ok(reply) => Outcome::Ok(v1::CallOperatorResponse {
                        terminal_mode: TerminalMode::Supported as i32,
                        result: pecr_contracts::canonical_json(&reply.result),
                        policy_decision: Some(policy_decision(reply.decision)),
                    }),
                    Err(error) => Outcome::Error(error.to_error_detail()),
                };
                v1::OperatorOutcome {
                    outcome: Some(outcome),
                }
            })
            .collect()
    }
}

#[tonic::async_trait]
impl GatewayService for GatewayApi {
    async fn create_session(
        &self,
        request: Request<v1::CreateSessionRequest>,
    ) -> Result<Response<v1::CreateSessionResponse>, Status> {
        let result = async {
            let caller = caller(&request)?;
            validate::create_session(request.get_ref())?;
            self.check_operator_rate(&caller, request.get_ref().calls.len())?;
            let trace_id =
                ids::trace_id_or_new(header(request.metadata(), "x-pecr-trace-id").as_deref());
            let request = request.into_inner();
            let op_names = op_names(&request.calls);
            let created = self.core.create_session(&caller, trace_id, request).await?;
            let token = MetadataValue::try_from(created.session_token.as_str())
                .map_err(|_| PecrError::internal("session token is not a valid header value"))?;
            let mut body = created.response;
            body.outcomes = self.outcomes(created.outcomes, &op_names);
            let mut response = Response::new(body);
            response
                .metadata_mut()
                .insert("x-pecr-session-token", token);
            Ok((response, TerminalMode::Supported))
        }
        .instrument(tracing::info_span!("session.create"))
        .await;
        answer(result)
    }

    async fn simulate_policy(
        &self,
        request: Request<v1::SimulatePolicyRequest>,
    ) -> Result<Response<v1::SimulatePolicyResponse>, Status> {
        let result = async {
            let caller = caller(&request)?;
            validate::simulate_policy(request.get_ref())?;
            let decision = self.core.simulate(&caller, request.into_inner()).await?;
            let decision = policy_decision(decision);
            let response = v1::SimulatePolicyResponse {
                allow: decision.allow,
                cacheable: decision.cacheable,
                reason: decision.reason,
                redaction: decision.redaction,
            };
            Ok((Response::new(response), TerminalMode::Supported))
        }
        .await;
        answer(result)
    }

    async fn call_operator(
        &self,
        request: Request<v1::CallOperatorRequest>,
    ) -> Result<Response<v1::CallOperatorResponse>, Status> {
        let op_name = request.get_ref().op_name.clone();
        let result = async {
            let caller = caller(&request)?;
            let token = session_token(request.metadata())?;
            let params = validate::call_operator(request.get_ref())?;
            let request = request.into_inner();
            let reply = self
                .core
                .call_operator(
                    &caller,
                    &token,
                    &request.session_id,
                    &request.op_name,
                    params,
                )
                .await?;
            let response = v1::CallOperatorResponse {
                terminal_mode: TerminalMode::Supported as i32,
                result: pecr_contracts::canonical_json(&reply.result),
                policy_decision: Some(policy_decision(reply.decision)),
            };
            Ok((Response::new(response), TerminalMode::Supported))
        }
        .await;
        self.core
            .metrics
            .operator_call(op_name.trim(), result.is_ok());
        answer(result)
    }

    async fn call_operators(
        &self,
        request: Request<v1::CallOperatorsRequest>,
    ) -> Result<Response<v1::CallOperatorsResponse>, Status> {
        let span = tracing::info_span!(
            "operator.batch",
            calls = request.get_ref().calls.len() as u64,
            outcome = tracing::field::Empty,
        );
        let result = async {
            let caller = caller(&request)?;
            let token = session_token(request.metadata())?;
            validate::call_operators(request.get_ref())?;
            self.check_operator_rate(&caller, request.get_ref().calls.len())?;
            let request = request.into_inner();
            let op_names = op_names(&request.calls);
            let calls = request.calls.into_iter().map(RequestedCall::from).collect();
            let replies = self
                .core
                .call_operators(&caller, &token, &request.session_id, calls)
                .await?;
            let outcomes = self.outcomes(replies, &op_names);
            let response = v1::CallOperatorsResponse { outcomes };
            Ok((Response::new(response), TerminalMode::Supported))
        }
        .instrument(span.clone())
        .await;
        span.record("outcome", if result.is_ok() { "ok" } else { "error" });
        answer(result)
    }

    async fn finalize(
        &self,
        request: Request<v1::FinalizeRequest>,
    ) -> Result<Response<v1::FinalizeResponse>, Status> {
        let result = async {
            let caller = caller(&request)?;
            let token = session_token(request.metadata())?;
            validate::finalize(request.get_ref())?;
            let response = self
                .core
                .finalize(&caller, &token, request.into_inner())
                .await?;
            let mode = TerminalMode::try_from(response.terminal_mode)
                .unwrap_or(TerminalMode::InsufficientEvidence);
            tracing::Span::current().record("terminal_mode", mode.as_str_name());
            Ok((Response::new(response), mode))
        }
        .instrument(tracing::info_span!(
            "finalize.compile",
            terminal_mode = tracing::field::Empty
        ))
        .await;
        answer(result)
    }
}
