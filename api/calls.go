package api

import (
	"net/http"
	"strings"
)

// callList is the body of GET /v1/calls.
type callList struct {
	Calls []CallView `json:"calls"`
}

// listCalls filters by ?caller=, ?state= and ?correlation=key:value
// (repeatable; every pair must match).
func (s *Server) listCalls(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := CallFilter{Caller: q.Get("caller"), State: q.Get("state")}
	for _, c := range q["correlation"] {
		k, v, ok := strings.Cut(c, ":")
		if !ok || k == "" {
			writeProblem(w, r, http.StatusBadRequest, "bad-request", "correlation must be key:value")
			return
		}
		if f.Correlation == nil {
			f.Correlation = map[string]string{}
		}
		f.Correlation[k] = v
	}
	calls := s.deps.Calls.List(f)
	if calls == nil {
		calls = []CallView{}
	}
	for i := range calls {
		s.withPayment(&calls[i])
	}
	writeJSON(w, http.StatusOK, callList{Calls: calls})
}

func (s *Server) getCall(w http.ResponseWriter, r *http.Request) {
	c, ok := s.deps.Calls.Get(r.PathValue("id"))
	if !ok {
		writeProblem(w, r, http.StatusNotFound, "not-found", "no such call")
		return
	}
	s.withPayment(&c)
	writeJSON(w, http.StatusOK, c)
}

// withPayment adds the call's live payment to c.
func (s *Server) withPayment(c *CallView) {
	if sess, ok := s.deps.Payments.Live(c.ID); ok {
		v := sess.View()
		c.Payment = &v
	}
}
