# PECR authorization policy: the decision for one gateway action.
#
# The gateway queries data.pecr.authz.decision and reads {allow, cacheable,
# reason, redaction}. Anything not granted below is denied. The rules are
# mutually exclusive (by action, principal and op), so `decision` never has
# two values.
package pecr.authz

import rego.v1

default decision := {
	"allow": false,
	"cacheable": false,
	"reason": "default_deny",
	"redaction": {},
}

# Principals that may open and finalize sessions.
session_principals := {"dev", "support", "guest"}

# Every operator the gateway knows; dev may call all of them.
dev_ops := {"search", "list_versions", "fetch_span", "diff", "fetch_rows", "aggregate", "redact"}

# Filesystem operators support may call on readable objects.
support_fs_ops := {"list_versions", "fetch_span", "diff"}

# Database operators support may call on allowlisted views.
support_db_ops := {"fetch_rows", "aggregate"}

support_views := {"safe_customer_view_public", "safe_customer_view_support"}

# Object prefixes support may read; everything else (restricted/...) is denied.
support_prefixes := ["public/", "injection/"]

# Columns support must never see, applied by the gateway to returned evidence.
support_redaction := {"deny_fields": ["admin_note", "injection_note"]}

decision := grant("health", true, {}) if input.action == "health"

decision := grant("create_session_dev", false, {}) if {
	input.action == "create_session"
	input.principal_id in session_principals
}

decision := grant("finalize_dev", false, {}) if {
	input.action == "finalize"
	input.principal_id in session_principals
}

decision := grant("operator_call_dev", true, {}) if {
	input.action == "operator_call"
	input.principal_id == "dev"
	input.op_name in dev_ops
}

decision := grant("operator_call_support_search", true, {}) if {
	input.action == "operator_call"
	input.principal_id == "support"
	input.op_name == "search"
}

decision := grant("operator_call_support_fs", true, support_redaction) if {
	input.action == "operator_call"
	input.principal_id == "support"
	input.op_name in support_fs_ops
	support_readable_object
}

decision := grant("operator_call_support_db", true, support_redaction) if {
	input.action == "operator_call"
	input.principal_id == "support"
	input.op_name in support_db_ops
	input.view_id in support_views
}

# A null or missing object_id never matches, so it falls to the default deny.
support_readable_object if {
	is_string(input.object_id)
	some prefix in support_prefixes
	startswith(input.object_id, prefix)
}

grant(reason, cacheable, redaction) := {
	"allow": true,
	"cacheable": cacheable,
	"reason": reason,
	"redaction": redaction,
}
