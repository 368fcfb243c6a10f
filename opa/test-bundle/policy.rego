# PECR test policy T (gateway spec §13): the policy the end-to-end suites run
# against. It differs from opa/bundle on purpose:
# - principal `redacted` may open sessions and call every operator, but loses
#   the admin_note column;
# - support keeps the bundle's operator rules but gets no redaction;
# - reasons are only test_allow / test_deny;
# - cacheable is true exactly when the action is operator_call (allow or deny).
package pecr.authz

import rego.v1

default decision := {
	"allow": false,
	"cacheable": false,
	"reason": "test_deny",
	"redaction": {},
}

session_principals := {"dev", "support", "guest", "redacted"}

support_fs_ops := {"list_versions", "fetch_span", "diff"}

support_db_ops := {"fetch_rows", "aggregate"}

support_views := {"safe_customer_view_public", "safe_customer_view_support"}

support_prefixes := ["public/", "injection/"]

# Denied operator calls are cacheable too, as every operator_call answer is.
decision := {
	"allow": false,
	"cacheable": true,
	"reason": "test_deny",
	"redaction": {},
} if {
	input.action == "operator_call"
	not operator_allowed
}

decision := allow(false, {}) if input.action == "health"

decision := allow(false, {}) if {
	input.action in {"create_session", "finalize"}
	input.principal_id in session_principals
}

decision := allow(true, {}) if {
	input.action == "operator_call"
	input.principal_id == "dev"
}

decision := allow(true, {"deny_fields": ["admin_note"]}) if {
	input.action == "operator_call"
	input.principal_id == "redacted"
}

decision := allow(true, {}) if {
	input.action == "operator_call"
	input.principal_id == "support"
	support_allowed
}

operator_allowed if input.principal_id in {"dev", "redacted"}

operator_allowed if {
	input.principal_id == "support"
	support_allowed
}

support_allowed if input.op_name == "search"

support_allowed if {
	input.op_name in support_fs_ops
	is_string(input.object_id)
	some prefix in support_prefixes
	startswith(input.object_id, prefix)
}

support_allowed if {
	input.op_name in support_db_ops
	input.view_id in support_views
}

allow(cacheable, redaction) := {
	"allow": true,
	"cacheable": cacheable,
	"reason": "test_allow",
	"redaction": redaction,
}
