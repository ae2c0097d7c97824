package server

import (
	"context"
	"net/http"

	"faas/store"
)

// Operators' view of the live registry (store/live.go): GET /workers lists the dispatchers
// alive and their workers; /healthz is "degraded" when there is none.
//
// A deployment without a live dispatcher still takes tasks (they wait, durably, in the
// queue), and every server of it is in the same state: so /healthz stays 200 when degraded,
// and a load balancer that checks the status keeps routing to it; the body says why.

// noDispatcher is the reason given when the registry is empty.
const noDispatcher = "no dispatcher has been heard from for a few heartbeats: tasks are accepted and wait in the queue until one runs (start one: faas dispatcher -m local)"

// workersAnswer is the body of GET /workers.
type workersAnswer struct {
	Dispatchers []store.Dispatcher `json:"dispatchers"`
	Healthy     bool               `json:"healthy"`
	Reason      string             `json:"reason,omitempty"`
}

// live reads the registry and says whether it is healthy.
func (s *Server) live(ctx context.Context) (workersAnswer, error) {
	ds, err := s.st.Dispatchers(ctx)
	if err != nil {
		return workersAnswer{}, err
	}
	a := workersAnswer{Dispatchers: ds, Healthy: len(ds) > 0}
	if !a.Healthy {
		a.Reason = noDispatcher
	}
	return a, nil
}

// workers handles GET /workers. It shows hosts, ports and worker names of the whole
// deployment, across namespaces: with API keys, only a key flagged admin=true may read it.
func (s *Server) workers(w http.ResponseWriter, r *http.Request) {
	if !s.operator(r.Context()) {
		s.writeError(w, r, &requestError{kind: errForbidden,
			msg: "GET /workers is an operator view of the whole deployment: it needs an API key flagged admin=true in the key file"})
		return
	}
	a, err := s.live(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeValue(w, r, http.StatusOK, a)
}

// healthAnswer writes the 200 of /healthz once Redis answered: "ok", or "degraded" with the
// reason. It says no more than that: /healthz needs no key.
func (s *Server) healthAnswer(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	alive, err := s.st.AnyDispatcher(ctx)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !alive {
		s.writeValue(w, r, http.StatusOK, map[string]string{"status": "degraded", "reason": noDispatcher})
		return
	}
	writeJSON(w, http.StatusOK, []byte(`{"status":"ok"}`+"\n"))
}
