//! The replay bundle of a run, completed from the finalize: the run's own
//! record, the session it ran in and the gate's claim map. It goes to the
//! ledger in the finalize's write, owned by the session's tenant and
//! principal.

use pecr_contracts::Budget;
use pecr_errors::{PecrError, PecrResult};
use pecr_proto::v1;
use pecr_replay::{RunRecord, SessionFacts};

use crate::core::PrincipalRequest;

pub fn bundle(
    run: RunRecord,
    caller: &PrincipalRequest,
    session: &v1::SessionRecord,
    response_text: &str,
    gated: &v1::ClaimMap,
) -> PecrResult<v1::StoreReplayBundleRequest> {
    let gated = pecr_replay::wire::claim_map_from_proto(gated)
        .ok_or_else(|| PecrError::internal("gated claim map without terminal mode"))?;
    let budget = session
        .budget
        .as_ref()
        .map(Budget::from)
        .ok_or_else(|| PecrError::internal("session without budget"))?;
    let facts = SessionFacts {
        trace_id: &session.trace_id,
        request_id: &caller.request_id,
        principal_id: &session.principal_id,
        session_id: &session.session_id,
        policy_snapshot_id: &session.policy_snapshot_id,
        budget,
    };
    let bundle = run.bundle(&facts, response_text.to_owned(), gated);
    Ok(v1::StoreReplayBundleRequest {
        tenant_id: session.tenant_id.clone(),
        bundle: bundle.to_json().to_string(),
    })
}
