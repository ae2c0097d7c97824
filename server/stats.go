package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"faas/store"
	"faas/task"
)

// The dashboard's JSON endpoints (docs/API.md, "Dashboard"): a namespace's overview, its
// functions with their figures of the last hour, pages of recently finished tasks and a
// function's failures by kind. All are scoped to the request's namespace like every other
// route; the page (/ui/, ui.go) is only a client of them. They are not on hot paths, so
// answers go through encoding/json.

// overviewAnswer is GET /stats/overview. Series are columns (one array per measure, all of
// one length), the shape a chart library draws without reshaping.
type overviewAnswer struct {
	Namespace   string    `json:"namespace"`
	Now         time.Time `json:"now"`
	Queued      int64     `json:"queued"`
	Running     int64     `json:"running"`
	Completed   int64     `json:"completed"`
	Failed      int64     `json:"failed"`
	StepSeconds int       `json:"step_seconds"`
	Series      struct {
		Start         []int64   `json:"start"` // unix seconds
		CompletedPerS []float64 `json:"completed_per_s"`
		FailedPerS    []float64 `json:"failed_per_s"`
		P50Ms         []float64 `json:"p50_ms"`
		P99Ms         []float64 `json:"p99_ms"`
	} `json:"series"`
}

func (s *Server) statsOverview(w http.ResponseWriter, r *http.Request) {
	ns := namespace(r.Context())
	o, err := s.st.Overview(r.Context(), ns)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	step := store.HistoryStep.Seconds()
	a := overviewAnswer{Namespace: ns, Now: o.Now.UTC(), Queued: o.Queued, Running: o.Running,
		Completed: o.Completed, Failed: o.Failed, StepSeconds: int(step)}
	n := len(o.Series)
	a.Series.Start = make([]int64, n)
	a.Series.CompletedPerS = make([]float64, n)
	a.Series.FailedPerS = make([]float64, n)
	a.Series.P50Ms = make([]float64, n)
	a.Series.P99Ms = make([]float64, n)
	for i, iv := range o.Series {
		a.Series.Start[i] = iv.Start.Unix()
		a.Series.CompletedPerS[i] = float64(iv.Completed) / step
		a.Series.FailedPerS[i] = float64(iv.Failed) / step
		a.Series.P50Ms[i] = round1(iv.P50Ms)
		a.Series.P99Ms[i] = round1(iv.P99Ms)
	}
	writeValue(w, http.StatusOK, a)
}

func round1(x float64) float64 { return float64(int64(x*10+0.5)) / 10 }

// functionFigures is one row of GET /stats/functions: the function as GET /functions
// answers it, and its last hour.
type functionFigures struct {
	store.Function
	TasksLastHour int64   `json:"tasks_last_hour"`
	Completed     int64   `json:"completed"`
	FailedCount   int64   `json:"failed"`
	FailureRate   float64 `json:"failure_rate"` // failed / tasks; 0 without tasks
	P50Ms         float64 `json:"p50_ms"`
	P99Ms         float64 `json:"p99_ms"`
	// FiguresOmitted marks a function beyond the newest statsFunctionsMax: its figures
	// (all zero) were not read.
	FiguresOmitted bool `json:"figures_omitted,omitempty"`
}

// statsFunctionsMax bounds the functions whose figures one /stats/functions reads (60
// interval hashes each): the newest ones.
const statsFunctionsMax = 500

func (s *Server) statsFunctions(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ns := namespace(ctx)
	fns, err := s.st.FunctionsIn(ctx, ns)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ids := make([]string, min(len(fns), statsFunctionsMax))
	for i := range ids {
		ids[i] = fns[i].ID
	}
	st, err := s.st.FunctionStats(ctx, ns, ids)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]functionFigures, len(fns))
	for i, f := range fns {
		fs, ok := st[f.ID]
		out[i] = functionFigures{Function: f, Completed: fs.Completed, FailedCount: fs.Failed,
			TasksLastHour: fs.Completed + fs.Failed, P50Ms: round1(fs.P50Ms), P99Ms: round1(fs.P99Ms),
			FiguresOmitted: !ok}
		if n := fs.Completed + fs.Failed; n > 0 {
			out[i].FailureRate = float64(fs.Failed) / float64(n)
		}
	}
	writeValue(w, http.StatusOK, struct {
		Namespace string            `json:"namespace"`
		Functions []functionFigures `json:"functions"`
	}{ns, out})
}

// recentTasks handles GET /tasks?status=&function=&since=&cursor=&limit=: finished tasks of
// the namespace, newest first, as /status answers them; with status QUEUED or RUNNING, the
// current ones instead (no paging).
func (s *Server) recentTasks(w http.ResponseWriter, r *http.Request) {
	q, err := s.recentQuery(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var page store.RecentPage
	if q.Status == task.Queued || q.Status == task.Running {
		page.Tasks, err = s.st.Unfinished(r.Context(), namespace(r.Context()), q.Status, q.FunctionID, q.Limit)
	} else {
		page, err = s.st.Recent(r.Context(), namespace(r.Context()), q)
	}
	if errors.Is(err, store.ErrBadCursor) {
		err = badRequest("cursor %q is not one this endpoint handed out (next_cursor)", q.Cursor)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	b := getBuf()
	*b = append(*b, `{"tasks":[`...)
	for i := range page.Tasks {
		if i > 0 {
			*b = append(*b, ',')
		}
		*b = appendTask(*b, &page.Tasks[i], false)
	}
	*b = append(*b, `],"next_cursor":`...)
	*b = appendString(*b, page.Next)
	*b = append(*b, "}\n"...)
	writeJSON(w, http.StatusOK, *b)
	putBuf(b)
}

// recentQuery reads and checks the query of GET /tasks.
func (s *Server) recentQuery(r *http.Request) (store.RecentQuery, error) {
	v := r.URL.Query()
	q := store.RecentQuery{Limit: 50, Cursor: v.Get("cursor")}
	switch st := task.Status(v.Get("status")); st {
	case "", task.Completed, task.Failed:
		q.Status = st
	case task.Queued, task.Running:
		if v.Get("since") != "" || q.Cursor != "" {
			return q, badRequest("since and cursor apply to finished tasks only; status %s lists the "+
				"current ones (QUEUED: the next to run; RUNNING: any order), up to limit", st)
		}
		q.Status = st
	default:
		return q, badRequest("status %q: want QUEUED, RUNNING, COMPLETED or FAILED", st)
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return q, badRequest("limit %q: want a number from 1 to 1000", l)
		}
		q.Limit = n
	}
	if since := v.Get("since"); since != "" {
		t, err := time.Parse(time.RFC3339, since)
		if err != nil {
			return q, badRequest("since %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", since)
		}
		q.Since = t
	}
	if f := v.Get("function"); f != "" {
		fn, err := s.functionByIDOrName(r, f)
		if err != nil {
			return q, err
		}
		q.FunctionID = fn.ID
	}
	return q, nil
}

// functionByIDOrName resolves a function of the request's namespace by id or name (404
// otherwise, also for another namespace's).
func (s *Server) functionByIDOrName(r *http.Request, idOrName string) (store.Function, error) {
	if validUUID(idOrName) {
		return s.functionByID(r.Context(), idOrName)
	}
	if err := checkName(idOrName); err != nil {
		return store.Function{}, err
	}
	fn, err := s.st.FunctionIn(r.Context(), namespace(r.Context()), idOrName)
	if errors.Is(err, store.ErrNotFound) {
		return store.Function{}, notFound("no function named %q", idOrName)
	}
	return fn, err
}

// failureGroup is one kind of failure of a function, with its newest example.
type failureGroup struct {
	Kind         task.Kind `json:"kind"`
	Count        int       `json:"count"`
	SampleTaskID string    `json:"sample_task_id"`
	Message      string    `json:"sample_message"`
	Stderr       []byte    `json:"sample_stderr"` // base64; the stored tail
}

// failuresSampled is how many of a function's newest failures /failures groups.
const failuresSampled = 500

// functionFailures handles GET /functions/{id_or_name}/failures: the function's newest
// failures (at most failuresSampled) grouped by kind, most frequent first, each with the
// message and stderr of its newest task.
func (s *Server) functionFailures(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	fn, err := s.functionByIDOrName(r, mux.Vars(r)["id_or_name"])
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page, err := s.st.Recent(ctx, namespace(ctx), store.RecentQuery{
		FunctionID: fn.ID, Status: task.Failed, Limit: failuresSampled})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	groups := []failureGroup{}
	index := map[task.Kind]int{}
	for _, rec := range page.Tasks {
		if rec.Error == nil {
			continue
		}
		i, ok := index[rec.Error.Kind]
		if !ok {
			i = len(groups)
			index[rec.Error.Kind] = i
			groups = append(groups, failureGroup{Kind: rec.Error.Kind, SampleTaskID: rec.ID, Message: rec.Error.Message})
		}
		groups[i].Count++
	}
	for i := range groups { // one full read per kind: stderr is left out of summaries
		if full, err := s.st.Task(ctx, groups[i].SampleTaskID); err == nil {
			groups[i].Stderr = full.Stderr
		}
	}
	sort.SliceStable(groups, func(a, b int) bool { return groups[a].Count > groups[b].Count })
	writeValue(w, http.StatusOK, struct {
		FunctionID string         `json:"function_id"`
		Sampled    int            `json:"sampled"`
		Kinds      []failureGroup `json:"kinds"`
	}{fn.ID, len(page.Tasks), groups})
}

// writeValue answers v as JSON.
func writeValue(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil { // only plain structs are passed: a bug
		http.Error(w, "encoding the answer failed", http.StatusInternalServerError)
		return
	}
	writeJSON(w, status, append(body, '\n'))
}

// taskInput handles GET /tasks/{task_id}/input → {"task_id", "function_id", "payload"}: the
// task's input (base64, as it was submitted) while it is kept — always until the task ends,
// then only an input of at most store.InputKept bytes (the dashboard's preview and "run
// again"). 404 for an unknown task, another namespace's, or an input no longer kept.
func (s *Server) taskInput(w http.ResponseWriter, r *http.Request) {
	id, rec, err := s.routeTask(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	input, ok, err := s.st.TaskInput(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !ok {
		s.writeError(w, r, notFound("the input of task %q is not kept: inputs over %d bytes are dropped when the task ends", id, store.InputKept))
		return
	}
	writeValue(w, http.StatusOK, struct {
		TaskID     string `json:"task_id"`
		FunctionID string `json:"function_id"`
		Payload    []byte `json:"payload"`
	}{id, rec.FunctionID, input})
}
