//! What a run keeps from operator results (spec 30 §9.4): the refs of the
//! latest search and every evidence unit returned.

use std::collections::BTreeSet;

use pecr_contracts::evidence::EvidenceUnit;
use serde::Deserialize;
use serde_json::Value;

/// A search hit: which evidence a later `fetch_span` can retrieve.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EvidenceRef {
    pub evidence_unit_id: String,
    pub source_system: String,
    pub object_id: String,
    pub version_id: String,
}

/// The evidence units an operator result holds: an array of units, or a
/// single one; none when it is neither.
pub fn units_in(result: &Value) -> Vec<EvidenceUnit> {
    if let Ok(units) = Vec::<EvidenceUnit>::deserialize(result) {
        units
    } else {
        EvidenceUnit::deserialize(result).map_or_else(|_| Vec::new(), |unit| vec![unit])
    }
}

/// Evidence gathered by one run, in arrival order.
#[derive(Debug, Default, Clone)]
pub struct EvidenceCollector {
    refs: Vec<EvidenceRef>,
    units: Vec<EvidenceUnit>,
}

impl EvidenceCollector {
    /// Records a successful operator result: search refs replace the
    /// current ones; an array of units (or a single unit) is appended.
    pub fn record(&mut self, op_name: &str, result: &Value) {
        if op_name == "search"
            && let Some(refs) = result.get("refs")
            && let Ok(refs) = Vec::<EvidenceRef>::deserialize(refs)
        {
            self.refs = refs;
        }
        self.units.extend(units_in(result));
    }

    /// Records a fan-out result, which may only be a single unit.
    pub fn record_single(&mut self, result: &Value) {
        if let Ok(unit) = EvidenceUnit::deserialize(result) {
            self.units.push(unit);
        }
    }

    pub fn refs(&self) -> &[EvidenceRef] {
        &self.refs
    }

    pub fn units(&self) -> &[EvidenceUnit] {
        &self.units
    }

    /// Sorted, de-duplicated ids of every unit received.
    pub fn unit_ids(&self) -> Vec<String> {
        self.units
            .iter()
            .map(|unit| unit.evidence_unit_id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }
}
