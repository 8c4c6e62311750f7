package ingest

import (
	"fmt"
	"net/http"

	"github.com/pyrite-dev/pyrite/internal/httpauth"
)

// HeaderPrincipal is the record header naming the principal whose token
// wrote the event (only with --auth-file).
const HeaderPrincipal = "pyrite-principal"

// authorize checks every event of a request against the scope of the
// request's bearer token (none: authentication is off) and records the
// principal on each: ce_userid (unless the token may act for the body's
// userId) and the pyrite-principal header. An event outside the scope
// refuses the whole request with 403, before anything is written.
func authorize(r *http.Request, evs []Event) *Problem {
	g := httpauth.GrantFrom(r.Context())
	if g == nil {
		return nil
	}
	var issues []FieldIssue
	allowed := false
	for i := range evs {
		// A batch's events mostly share a type: check each run of one type once.
		if i == 0 || evs[i].Type != evs[i-1].Type {
			allowed = g.Allows(evs[i].Type)
		}
		if !allowed {
			at := -1
			if len(evs) > 1 || r.URL.Path != "/v1/events" {
				at = i
			}
			issues = append(issues, FieldIssue{Field: fieldPrefix(at) + "type",
				Message: fmt.Sprintf("%s may not write %s (allowed: %v)", g.Principal, evs[i].Type, g.Types)})
		}
	}
	if issues != nil {
		return problem(http.StatusForbidden, "forbidden", "Forbidden",
			"the token may not write every event of the request; nothing was written", issues...)
	}
	for i := range evs {
		evs[i].Metadata.UserID = g.UserID(evs[i].Metadata.UserID)
		evs[i].principal = g.Principal
	}
	return nil
}
