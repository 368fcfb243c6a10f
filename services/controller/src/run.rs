//! One run end to end (spec 30 §6.2): budget, gateway session, engine loop,
//! answer and claim map, finalize, replay bundle, response.

use std::collections::BTreeMap;

use pecr_auth::Principal;
use pecr_contracts::budget::Budget;
use pecr_contracts::evidence::EvidenceUnit;
use pecr_errors::PecrError;
use pecr_proto::v1;
use pecr_replay::{EngineMode, ReplayBundle, TerminalMode};
use pecr_replay::{RunRecord, SessionFacts, reported_mode};
use tracing::{info, warn};

use crate::answer::{self, DraftClaim};
use crate::budget_gate::BudgetGate;
use crate::config::OperatorPolicy;
use crate::convert::claim_map_from_proto;
use crate::engine::{self, LoopResult};
use crate::fallback::EngineFallback;
use crate::gateway_client::{
    GatewayClient, GatewayCredential, LazySession, PrincipalCredential, SessionClient,
    contract_mode,
};
use crate::metrics::ControllerMetrics;
use crate::plan::Plan;
use crate::progress::Progress;
use crate::replay_store::{PrincipalKey, ReplayStore};

/// What every run of this process shares.
pub struct RunSettings {
    pub engine: EngineMode,
    pub budget_defaults: Budget,
    pub plan: Plan,
    pub adaptive_parallelism: bool,
    #[cfg_attr(not(feature = "rlm"), allow(dead_code))]
    pub batch_mode: bool,
    #[cfg_attr(not(feature = "rlm"), allow(dead_code))]
    pub operator_policies: BTreeMap<String, OperatorPolicy>,
    pub shared_secret: Option<String>,
}

pub struct Runner {
    pub settings: RunSettings,
    pub fallback: EngineFallback,
    pub gateway: GatewayClient,
    pub store: ReplayStore,
    pub metrics: ControllerMetrics,
}

/// Correlation ids of one request (spec 30 §1.3).
#[derive(Debug, Clone)]
pub struct RunIds {
    pub request_id: String,
    pub trace_id: String,
}

impl Runner {
    /// `authorization` is the caller's header in OIDC mode, forwarded to the
    /// gateway in place of the local-mode principal header.
    pub async fn run(
        &self,
        principal: &Principal,
        authorization: Option<String>,
        ids: &RunIds,
        query: String,
        budget: Option<Budget>,
        progress: &Progress,
    ) -> Result<v1::RunResponse, PecrError> {
        // A supplied budget replaces the defaults entirely. Both are valid:
        // the request's was checked before the run, the defaults at start-up.
        let budget = budget.unwrap_or(self.settings.budget_defaults);
        let identity = PrincipalCredential {
            principal_id: principal.principal_id.clone(),
            credential: match authorization {
                Some(authorization) => GatewayCredential::Bearer { authorization },
                None => GatewayCredential::Local {
                    shared_secret: self.settings.shared_secret.clone(),
                },
            },
            request_id: ids.request_id.clone(),
            trace_id: ids.trace_id.clone(),
        };
        let gate = BudgetGate::start(budget, self.settings.adaptive_parallelism);
        let engine = self.fallback.engine(self.settings.engine);
        let ran = self
            .run_engine(engine, &query, principal, identity, budget, gate, progress)
            .await;
        if engine == EngineMode::Rlm {
            self.count_rlm_outcome(ids, ran.as_ref().map(|_| ()));
        }
        let (looped, session) = ran?;
        let ids = &identity_ids(&session);
        self.metrics.loop_finished(looped.stop_reason);
        info!(
            event = "controller.context_loop_completed",
            request_id = %ids.request_id,
            trace_id = %ids.trace_id,
            principal_id = %principal.principal_id,
            session_id = %session.session_id,
            policy_snapshot_id = %session.policy_snapshot_id,
            terminal_mode = looped.terminal_mode.as_str(),
            stop_reason = looped.stop_reason.as_str(),
            budget_violation = looped.stop_reason.is_budget_violation(),
            operator_calls_used = looped.usage.operator_calls,
            depth_used = looped.usage.depth,
            bytes_used = looped.usage.bytes,
            "context loop completed"
        );

        let (response_text, claims, proposed_mode) = compose(&query, &looped);
        progress.finalizing(looped.stop_reason.as_str(), claims.len());
        let claim_map = answer::claim_map(&claims, proposed_mode);
        let record = self.run_record(engine, query, &looped, &claims);
        let failure_mode = record.failure_mode;
        // With the ledger as the replay store, the gateway records the
        // bundle with the finalize, in one write.
        let in_ledger = self.store.is_ledger();
        let finalized = session
            .finalize(
                response_text,
                claim_map,
                in_ledger.then(|| v1::RunRecord::from(record.clone())),
            )
            .await?;
        let finalized = with_failure_mode(finalized, failure_mode);
        let cited_evidence = finalized
            .claim_map
            .as_ref()
            .map(|map| cited_evidence(map, &looped))
            .unwrap_or_default();

        let run_id = if in_ledger {
            finalized.run_id.clone()
        } else {
            match self.bundle(principal, ids, budget, &session, record, &finalized) {
                Ok(bundle) => self.persist(&principal.tenant_id, ids, bundle).await,
                Err(err) => persist_failed(ids, &err),
            }
        };
        Ok(v1::RunResponse {
            terminal_mode: finalized.terminal_mode,
            trace_id: finalized.trace_id,
            claim_map: finalized.claim_map,
            response_text: finalized.response_text,
            run_id: run_id.unwrap_or_default(),
            stop_reason: looped.stop_reason.as_str().to_owned(),
            cited_evidence,
        })
    }

    /// Runs the engine in a gateway session: the baseline's first batch
    /// opens the session (one request for both); the RLM engine gets an open
    /// session.
    #[allow(clippy::too_many_arguments)]
    async fn run_engine(
        &self,
        engine: EngineMode,
        query: &str,
        principal: &Principal,
        identity: PrincipalCredential,
        budget: Budget,
        gate: BudgetGate,
        progress: &Progress,
    ) -> Result<(LoopResult, SessionClient), PecrError> {
        let budget = v1::Budget::from(&budget);
        match engine {
            EngineMode::Baseline => {
                let mut session = LazySession::new(self.gateway.clone(), identity, budget);
                let looped = engine::baseline::run(
                    &self.settings.plan,
                    query,
                    &mut session,
                    gate,
                    &self.metrics,
                    progress,
                )
                .await?;
                let session = session.into_open().await?;
                // Reported already unless no step ran.
                progress.session_created(&session);
                log_session_created(principal, &identity_ids(&session), &session);
                Ok((looped, session))
            }
            #[cfg(feature = "rlm")]
            EngineMode::Rlm => {
                let session = self.gateway.create_session(&identity, budget).await?;
                let ids = identity_ids(&session);
                log_session_created(principal, &ids, &session);
                progress.session_created(&session);
                let options = engine::rlm::RlmOptions {
                    batch_mode: self.settings.batch_mode,
                    policies: self.settings.operator_policies.clone(),
                    request_id: ids.request_id,
                    trace_id: ids.trace_id,
                };
                let looped =
                    engine::rlm::run(query, &session, gate, &self.metrics, &options, progress)
                        .await?;
                Ok((looped, session))
            }
            #[cfg(not(feature = "rlm"))]
            EngineMode::Rlm => {
                let _ = (query, principal, identity, budget, gate, progress);
                Err(PecrError::new(
                    pecr_errors::ErrorCode::RlmFeatureDisabled,
                    "this controller was built without the rlm feature",
                ))
            }
        }
    }

    /// Counts an RLM run's outcome towards the engine fallback; logs and
    /// counts the switch when this run made it.
    fn count_rlm_outcome(&self, ids: &RunIds, outcome: Result<(), &PecrError>) {
        if self.fallback.record(outcome) {
            self.metrics.engine_fell_back();
            warn!(
                event = "controller.engine_fallback",
                request_id = %ids.request_id,
                trace_id = %ids.trace_id,
                from = "rlm",
                to = "baseline",
                "repeated rlm bridge failures: later runs use the baseline engine until restart"
            );
        }
    }

    /// What the engine knows of its run, for the replay bundle.
    fn run_record(
        &self,
        engine: EngineMode,
        query: String,
        looped: &LoopResult,
        claims: &[DraftClaim],
    ) -> RunRecord {
        let failed = looped.stop_reason == crate::budget_gate::StopReason::OperatorError
            && matches!(
                looped.terminal_mode,
                TerminalMode::InsufficientPermission | TerminalMode::SourceUnavailable
            );
        RunRecord {
            query,
            engine_mode: engine,
            loop_terminal_mode: looped.terminal_mode,
            loop_response_text: looped.response_text.clone(),
            operator_calls_used: looped.usage.operator_calls,
            bytes_used: looped.usage.bytes,
            depth_used: looped.usage.depth,
            evidence_ref_count: u32::try_from(looped.evidence.refs().len()).unwrap_or(u32::MAX),
            evidence_unit_ids: looped.evidence.unit_ids(),
            failure_mode: failed.then_some(looped.terminal_mode),
            cited_evidence: cited_units(claims, looped),
        }
    }

    /// Stores the replay bundle in files; a failure is logged and leaves
    /// the response as it is (without a run id).
    async fn persist(&self, tenant_id: &str, ids: &RunIds, bundle: ReplayBundle) -> Option<String> {
        let owner = PrincipalKey {
            tenant_id: tenant_id.to_owned(),
            principal_id_hash: bundle.metadata.principal_id_hash.clone(),
        };
        match self.store.store_bundle(&owner, &bundle).await {
            Ok(()) => Some(bundle.metadata.run_id),
            Err(err) => persist_failed(ids, &err),
        }
    }

    /// The bundle of a run whose replay this controller stores itself.
    fn bundle(
        &self,
        principal: &Principal,
        ids: &RunIds,
        budget: Budget,
        session: &SessionClient,
        record: RunRecord,
        finalized: &v1::FinalizeResponse,
    ) -> Result<ReplayBundle, PecrError> {
        let gated = finalized
            .claim_map
            .as_ref()
            .ok_or_else(|| PecrError::internal("finalize without claim map"))
            .and_then(claim_map_from_proto)?;
        let facts = SessionFacts {
            trace_id: &ids.trace_id,
            request_id: &ids.request_id,
            principal_id: &principal.principal_id,
            session_id: &session.session_id,
            policy_snapshot_id: &session.policy_snapshot_id,
            budget,
        };
        Ok(record.bundle(&facts, finalized.response_text.clone(), gated))
    }
}

/// The run's ids once the gateway chose its trace.
fn identity_ids(session: &SessionClient) -> RunIds {
    RunIds {
        request_id: session.request_id().to_owned(),
        trace_id: session.trace_id().to_owned(),
    }
}

fn log_session_created(principal: &Principal, ids: &RunIds, session: &SessionClient) {
    info!(
        event = "controller.gateway_session_created",
        request_id = %ids.request_id,
        trace_id = %ids.trace_id,
        principal_id = %principal.principal_id,
        session_id = %session.session_id,
        policy_snapshot_id = %session.policy_snapshot_id,
        "gateway session created"
    );
}

/// Logs a replay that could not be stored; the run's answer stands.
fn persist_failed(ids: &RunIds, err: &PecrError) -> Option<String> {
    warn!(
        event = "controller.replay_persist_failed",
        request_id = %ids.request_id,
        trace_id = %ids.trace_id,
        error = %err.message,
        "replay not persisted"
    );
    None
}

/// The answer submitted to finalize: the engine's text, else an
/// evidence-backed answer when the evidence covers the query, else the
/// default text of the loop's mode.
fn compose(query: &str, looped: &LoopResult) -> (String, Vec<DraftClaim>, TerminalMode) {
    if let Some(text) = &looped.response_text {
        return (
            text.clone(),
            answer::claims_from_text(text),
            looped.terminal_mode,
        );
    }
    if looped.terminal_mode == TerminalMode::InsufficientEvidence
        && let Some(claims) = answer::evidence_answer(query, looped.evidence.units())
    {
        return (answer::text_of(&claims), claims, TerminalMode::Supported);
    }
    let text = answer::default_text(looped.terminal_mode);
    (
        text.to_owned(),
        answer::claims_from_text(text),
        looped.terminal_mode,
    )
}

/// The gateway's gate only decides SUPPORTED or INSUFFICIENT_EVIDENCE
/// (spec 20 §7); a run whose loop ended because policy denied a call or a
/// source failed reports that mode, unless the gate found the answer
/// supported after all (the bundle follows the same rule).
fn with_failure_mode(
    mut finalized: v1::FinalizeResponse,
    failure: Option<TerminalMode>,
) -> v1::FinalizeResponse {
    let Some(gated) = contract_mode(finalized.terminal_mode) else {
        return finalized;
    };
    let mode = crate::gateway_client::proto_mode(reported_mode(gated, failure)) as i32;
    finalized.terminal_mode = mode;
    if let Some(map) = finalized.claim_map.as_mut() {
        map.terminal_mode = mode;
    }
    finalized
}

/// The identities of the units `claims` cite, for the replay.
fn cited_units(claims: &[DraftClaim], looped: &LoopResult) -> Vec<pecr_replay::CitedEvidence> {
    cited(
        claims.iter().flat_map(|claim| &claim.evidence_unit_ids),
        looped,
    )
    .map(|unit| pecr_replay::CitedEvidence {
        evidence_unit_id: unit.evidence_unit_id.clone(),
        source_system: unit.source_system.clone(),
        object_id: unit.object_id.clone(),
        version_id: unit.version_id.clone(),
    })
    .collect()
}

/// The unit of each distinct id in `ids` the run received, by id.
fn cited<'a>(
    ids: impl IntoIterator<Item = &'a String>,
    looped: &'a LoopResult,
) -> impl Iterator<Item = &'a EvidenceUnit> {
    let ids: std::collections::BTreeSet<&String> = ids.into_iter().collect();
    ids.into_iter().filter_map(|id| {
        looped
            .evidence
            .units()
            .iter()
            .find(|unit| &unit.evidence_unit_id == id)
    })
}

/// Where each evidence unit cited by the final claims came from.
fn cited_evidence(map: &v1::ClaimMap, looped: &LoopResult) -> Vec<v1::EvidenceUnitRef> {
    cited(
        map.claims.iter().flat_map(|claim| &claim.evidence_unit_ids),
        looped,
    )
    .map(|unit| v1::EvidenceUnitRef {
        evidence_unit_id: unit.evidence_unit_id.clone(),
        source_system: unit.source_system.clone(),
        object_id: unit.object_id.clone(),
        version_id: unit.version_id.clone(),
        transform_types: unit
            .transform_chain
            .iter()
            .map(|step| step.transform_type.clone())
            .collect(),
    })
    .collect()
}
