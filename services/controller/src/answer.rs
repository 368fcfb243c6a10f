//! The answer of a run and its claim map (spec 30 §11, decision 8).
//!
//! The baseline answers from evidence: each unit that matches the query's
//! terms ([`pecr_contracts::terms`], the terms the gateway's search matches)
//! yields one SUPPORTED claim that cites it. Only when every term of the
//! query is covered by cited evidence is that answer proposed; anything
//! less keeps the spec's `UNKNOWN:` text, so `SUPPORTED` is earned by real
//! coverage and the gateway's finalize gate has the last word. A unit whose
//! matched terms another unit matches and more is left out: it answers less
//! of the question (docs/decisions.md, "Usefulness"). A question the evidence cannot settle by
//! stating what it holds (a negation, a "why") gets no answer.
//!
//! Claims state row fields (already filtered and redacted by policy for this
//! principal) and name the documents and lines that match; they never quote
//! document text.

use std::collections::BTreeSet;

use pecr_contracts::evidence::{EvidenceContentType, EvidenceUnit};
use pecr_contracts::hashing::claim_id;
use pecr_contracts::ids::new_ulid;
use pecr_contracts::terms::term_set;
use pecr_proto::v1;
use pecr_replay::{ClaimStatus, TerminalMode};
use serde_json::Value;

use crate::gateway_client::proto_mode;

pub const COVERAGE_THRESHOLD: f64 = 0.95;

/// Words that turn a question into one that matching evidence does not
/// answer: a negation ("which customer is not suspended") or a request for
/// a reason.
const BEYOND_EVIDENCE: [&str; 10] = [
    "cannot", "except", "never", "no", "none", "nor", "not", "why", "without", "neither",
];

/// A claim before the gateway sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct DraftClaim {
    pub status: ClaimStatus,
    pub text: String,
    pub evidence_unit_ids: Vec<String>,
}

/// The text the controller answers with when it has nothing better (§11.1).
pub fn default_text(mode: TerminalMode) -> &'static str {
    match mode {
        TerminalMode::InsufficientEvidence => "UNKNOWN: insufficient evidence to answer the query.",
        TerminalMode::InsufficientPermission => {
            "UNKNOWN: insufficient permission to access required evidence."
        }
        TerminalMode::SourceUnavailable => {
            "UNKNOWN: required sources were unavailable within budget."
        }
        TerminalMode::Supported => "UNKNOWN: supported mode not implemented yet.",
    }
}

/// Claims of a free text (§11.2): one per non-empty line, `ASSUMPTION:` and
/// `UNKNOWN:` prefixes recognised (case-sensitive), anything else UNKNOWN.
pub fn claims_from_text(text: &str) -> Vec<DraftClaim> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .filter_map(|line| {
            let (status, rest) = if let Some(rest) = line.strip_prefix("ASSUMPTION:") {
                (ClaimStatus::Assumption, rest.trim())
            } else if let Some(rest) = line.strip_prefix("UNKNOWN:") {
                (ClaimStatus::Unknown, rest.trim())
            } else {
                (ClaimStatus::Unknown, line)
            };
            (!rest.is_empty()).then(|| DraftClaim {
                status,
                text: rest.to_owned(),
                evidence_unit_ids: Vec::new(),
            })
        })
        .collect()
}

/// Whether `query` asks what stated facts cannot settle (see
/// [`BEYOND_EVIDENCE`]; contractions such as "isn't" count as "not").
fn asks_beyond_evidence(query: &str) -> bool {
    query
        .split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’'))
        .map(str::to_lowercase)
        .any(|word| {
            BEYOND_EVIDENCE.contains(&word.as_str())
                || word.ends_with("n't")
                || word.ends_with("n’t")
        })
}

/// An evidence-backed answer to `query`, or None when the evidence does not
/// cover every term of the query or the query asks beyond it.
pub fn evidence_answer(query: &str, units: &[EvidenceUnit]) -> Option<Vec<DraftClaim>> {
    let wanted = term_set(query);
    if wanted.is_empty() || asks_beyond_evidence(query) {
        return None;
    }
    let mut covered = BTreeSet::new();
    // Each claim with the terms its units matched.
    let mut claims: Vec<(DraftClaim, BTreeSet<String>)> = Vec::new();
    for unit in units {
        let matched: BTreeSet<String> = vocabulary(unit).intersection(&wanted).cloned().collect();
        if matched.is_empty() {
            continue;
        }
        covered.extend(matched.iter().cloned());
        let text = describe(unit, &matched);
        match claims.iter_mut().find(|(claim, _)| claim.text == text) {
            Some((claim, _)) => claim.evidence_unit_ids.push(unit.evidence_unit_id.clone()),
            None => claims.push((
                DraftClaim {
                    status: ClaimStatus::Supported,
                    text,
                    evidence_unit_ids: vec![unit.evidence_unit_id.clone()],
                },
                matched,
            )),
        }
    }
    if covered != wanted {
        return None;
    }
    let kept = claims
        .iter()
        .filter(|(_, matched)| {
            !claims
                .iter()
                .any(|(_, other)| matched.len() < other.len() && matched.is_subset(other))
        })
        .map(|(claim, _)| claim.clone())
        .collect();
    Some(kept)
}

/// Every term a unit can vouch for: a row's key (not the tenant) and its
/// fields and values; a document's path and content. The view's own name
/// is not about the row, so it is left out.
fn vocabulary(unit: &EvidenceUnit) -> BTreeSet<String> {
    let mut words = BTreeSet::new();
    match row_key(&unit.span_or_row_spec) {
        Some(key) => {
            for (name, value) in key {
                words.extend(term_set(name));
                words.extend(term_set(&scalar(value)));
            }
        }
        None => words.extend(term_set(&unit.object_id)),
    }
    if let Some(content) = &unit.content {
        words.extend(term_set(&value_text(content)));
    }
    words
}

/// The columns of a row's primary key that say which row it is: all but
/// the tenant. None for a unit that is not a row.
fn row_key(spec: &Value) -> Option<impl Iterator<Item = (&String, &Value)>> {
    spec.get("primary_key")
        .and_then(Value::as_object)
        .map(|key| key.iter().filter(|(name, _)| name.as_str() != "tenant_id"))
}

/// Keys and scalar values of a JSON value as plain text.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Object(fields) => fields
            .iter()
            .map(|(key, value)| format!("{key} {}", value_text(value)))
            .collect::<Vec<_>>()
            .join(" "),
        Value::Array(items) => items.iter().map(value_text).collect::<Vec<_>>().join(" "),
        other => other.to_string(),
    }
}

/// One sentence about a unit: a row's fields, or which terms a document matches.
fn describe(unit: &EvidenceUnit, matched: &BTreeSet<String>) -> String {
    let spec = &unit.span_or_row_spec;
    if unit.content_type == EvidenceContentType::ApplicationJson
        && let Some(Value::Object(fields)) = &unit.content
    {
        let view = spec.get("view_id").and_then(Value::as_str).unwrap_or("row");
        let key = row_key(spec)
            .map(|key| {
                key.map(|(name, value)| format!("{name} {}", scalar(value)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let values = fields
            .iter()
            .map(|(name, value)| format!("{name} is {}", scalar(value)))
            .collect::<Vec<_>>()
            .join(", ");
        return format!("In {view}, {key}: {values}.");
    }
    let lines = match (
        spec.get("line_start").and_then(Value::as_u64),
        spec.get("line_end").and_then(Value::as_u64),
    ) {
        (Some(start), Some(end)) if start != end => format!(" (lines {start}-{end})"),
        (Some(start), _) => format!(" (line {start})"),
        _ => String::new(),
    };
    let matched = matched.iter().cloned().collect::<Vec<_>>().join(", ");
    format!("{}{lines} covers: {matched}.", unit.object_id)
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "unknown".into(),
        other => other.to_string(),
    }
}

/// The text of claims, one per line, with the status prefix where it has one.
pub fn text_of(claims: &[DraftClaim]) -> String {
    claims
        .iter()
        .map(|claim| match claim.status {
            ClaimStatus::Supported => claim.text.clone(),
            ClaimStatus::Assumption => format!("ASSUMPTION: {}", claim.text),
            ClaimStatus::Unknown => format!("UNKNOWN: {}", claim.text),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The claim map submitted to finalize.
pub fn claim_map(claims: &[DraftClaim], terminal_mode: TerminalMode) -> v1::ClaimMap {
    let supported: Vec<_> = claims
        .iter()
        .filter(|claim| claim.status == ClaimStatus::Supported)
        .collect();
    let coverage_observed = if supported.is_empty() {
        1.0
    } else {
        let backed = supported
            .iter()
            .filter(|claim| !claim.evidence_unit_ids.is_empty())
            .count();
        backed as f64 / supported.len() as f64
    };
    v1::ClaimMap {
        claim_map_id: new_ulid(),
        terminal_mode: proto_mode(terminal_mode) as i32,
        claims: claims
            .iter()
            .map(|claim| {
                let mut ids = claim.evidence_unit_ids.clone();
                ids.sort_unstable();
                ids.dedup();
                v1::Claim {
                    claim_id: claim_id(&claim.text, claim.status.as_str(), &ids),
                    claim_text: claim.text.clone(),
                    status: proto_status(claim.status) as i32,
                    evidence_unit_ids: ids,
                }
            })
            .collect(),
        coverage_threshold: COVERAGE_THRESHOLD,
        coverage_observed,
        notes: None,
    }
}

fn proto_status(status: ClaimStatus) -> v1::claim::Status {
    match status {
        ClaimStatus::Supported => v1::claim::Status::Supported,
        ClaimStatus::Assumption => v1::claim::Status::Assumption,
        ClaimStatus::Unknown => v1::claim::Status::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pecr_contracts::evidence::{EvidenceContent, EvidenceParts};
    use serde_json::json;

    fn row_unit(content: Value) -> EvidenceUnit {
        EvidenceUnit::new(EvidenceParts {
            source_system: "pg_safeview".into(),
            object_id: "safe_customer_view_public:local:cust_public_1".into(),
            version_id: "v".repeat(64),
            span_or_row_spec: json!({"type":"db_row","view_id":"safe_customer_view_public","primary_key":{"tenant_id":"local","customer_id":"cust_public_1"},"fields":["status","plan_tier"]}),
            content: EvidenceContent::Json(content),
            as_of_time: "1970-01-01T00:00:00Z".into(),
            policy_snapshot_id: "p".into(),
            policy_snapshot_hash: "h".repeat(64),
            transform_chain: Vec::new(),
        })
    }

    #[test]
    fn scenario_32_claims_from_text() {
        let claims =
            claims_from_text("\nUNKNOWN: first claim\nASSUMPTION: second claim\nraw third claim\n");
        let pairs: Vec<_> = claims.iter().map(|c| (c.status, c.text.as_str())).collect();
        assert_eq!(
            pairs,
            [
                (ClaimStatus::Unknown, "first claim"),
                (ClaimStatus::Assumption, "second claim"),
                (ClaimStatus::Unknown, "raw third claim"),
            ]
        );
        assert!(claims_from_text("UNKNOWN:   \nSUPPORTED: x").len() == 1);
    }

    #[test]
    fn scenario_33_default_claim_map() {
        let claims = claims_from_text("UNKNOWN: insufficient evidence.\n");
        let map = claim_map(&claims, TerminalMode::InsufficientEvidence);
        assert_eq!(map.claims.len(), 1);
        assert_eq!(map.claims[0].claim_text, "insufficient evidence.");
        assert!(map.claims[0].evidence_unit_ids.is_empty());
        assert!(pecr_contracts::is_sha256_hex(&map.claims[0].claim_id));
        assert_eq!(map.coverage_observed, 1.0);
        assert_eq!(map.coverage_threshold, 0.95);
        let default = claim_map(
            &claims_from_text(default_text(TerminalMode::InsufficientEvidence)),
            TerminalMode::InsufficientEvidence,
        );
        assert_eq!(
            default.claims[0].claim_id,
            "76f6a5677446734df3eda2aa42d57412879f6d193d6a276b4f869f5674984851"
        );
    }

    #[test]
    fn a_row_that_covers_every_term_answers_the_question() {
        let unit = row_unit(json!({"status": "active", "plan_tier": "free"}));
        let claims = evidence_answer(
            "What is the customer status and plan tier?",
            std::slice::from_ref(&unit),
        )
        .expect("covered");
        assert_eq!(claims.len(), 1);
        assert_eq!(
            claims[0].text,
            "In safe_customer_view_public, customer_id cust_public_1: plan_tier is free, status is active."
        );
        assert_eq!(
            claims[0].evidence_unit_ids,
            std::slice::from_ref(&unit.evidence_unit_id)
        );
        let map = claim_map(&claims, TerminalMode::Supported);
        assert_eq!(map.coverage_observed, 1.0);
        assert_eq!(map.claims[0].status, v1::claim::Status::Supported as i32);
    }

    fn row(customer: &str, content: Value) -> EvidenceUnit {
        EvidenceUnit::new(EvidenceParts {
            source_system: "pg_safeview".into(),
            object_id: format!("safe_customer_view_public:local:{customer}"),
            version_id: "v".repeat(64),
            span_or_row_spec: json!({"type":"db_row","view_id":"safe_customer_view_public","primary_key":{"tenant_id":"local","customer_id":customer},"fields":["status","plan_tier"]}),
            content: EvidenceContent::Json(content),
            as_of_time: "1970-01-01T00:00:00Z".into(),
            policy_snapshot_id: "p".into(),
            policy_snapshot_hash: "h".repeat(64),
            transform_chain: Vec::new(),
        })
    }

    fn document(object_id: &str, text: &str) -> EvidenceUnit {
        EvidenceUnit::new(EvidenceParts {
            source_system: "fs_corpus".into(),
            object_id: object_id.into(),
            version_id: "v".repeat(64),
            span_or_row_spec: json!({"type":"text_span","start_byte":0,"end_byte":text.len(),"line_start":1,"line_end":1}),
            content: EvidenceContent::Text(text.into()),
            as_of_time: "1970-01-01T00:00:00Z".into(),
            policy_snapshot_id: "p".into(),
            policy_snapshot_hash: "h".repeat(64),
            transform_chain: Vec::new(),
        })
    }

    fn cited(claims: &[DraftClaim]) -> Vec<String> {
        claims
            .iter()
            .flat_map(|claim| claim.evidence_unit_ids.clone())
            .collect()
    }

    #[test]
    fn units_that_answer_less_are_left_out() {
        let active = row(
            "cust_public_1",
            json!({"status": "active", "plan_tier": "free"}),
        );
        let suspended = row(
            "cust_restricted_1",
            json!({"status": "suspended", "plan_tier": "enterprise"}),
        );
        let note = document("public/notes.txt", "A customer note.");
        let units = [active.clone(), suspended.clone(), note];
        // Both rows match "customer"; only one matches "suspended" too.
        let claims = evidence_answer("Which customer is suspended?", &units).expect("covered");
        assert_eq!(
            cited(&claims),
            std::slice::from_ref(&suspended.evidence_unit_id)
        );
        // Rows that match equally are all kept: every customer is listed.
        let claims = evidence_answer("customer status and plan tier", &units).expect("covered");
        assert_eq!(
            cited(&claims),
            [
                active.evidence_unit_id.clone(),
                suspended.evidence_unit_id.clone()
            ]
        );
        // The view's name is not a row's term; its key is.
        assert_eq!(evidence_answer("safe view", &units), None);
        let claims = evidence_answer("cust_public_1 plan", &units).expect("covered");
        assert_eq!(cited(&claims), [active.evidence_unit_id]);
    }

    #[test]
    fn negations_and_reasons_get_no_answer() {
        let active = row(
            "cust_public_1",
            json!({"status": "active", "plan_tier": "free"}),
        );
        let units = std::slice::from_ref(&active);
        assert!(evidence_answer("Which customer is active?", units).is_some());
        for query in [
            "Which customer is not active?",
            "Which customer isn't active?",
            "Which customer is never active?",
            "Why is the customer active?",
        ] {
            assert_eq!(evidence_answer(query, units), None, "{query}");
        }
    }

    #[test]
    fn uncovered_terms_leave_the_answer_unknown() {
        let unit = row_unit(json!({"status": "active", "plan_tier": "free"}));
        assert_eq!(evidence_answer("smoke", std::slice::from_ref(&unit)), None);
        assert_eq!(
            evidence_answer("customer status and invoice", &[unit]),
            None
        );
        assert_eq!(evidence_answer("what is it", &[]), None);
    }
}
