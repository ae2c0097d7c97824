package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"faas/store"
)

// execute handles POST /execute_function {"function_id" | "function_name", "payload"} →
// 201 {"task_id"}.
func (s *Server) execute(w http.ResponseWriter, r *http.Request) {
	max := (s.cfg.MaxLimits.StdinBytes+2)/3*4 + 4<<10
	var req executeRequest
	if err := decodeJSON(http.MaxBytesReader(w, r.Body, max), &req); err != nil {
		if isA[*http.MaxBytesError](err) {
			err = tooLarge("the input is larger than the server's maximum stdin_bytes of %d", s.cfg.MaxLimits.StdinBytes)
		}
		s.writeError(w, r, err)
		return
	}
	input, err := req.Payload.field("payload")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx := r.Context()
	fn, err := s.executeTarget(ctx, req)
	if err != nil {
		s.writeError(w, r, err, slog.String("function_id", req.FunctionID), slog.String("function_name", req.FunctionName))
		return
	}
	if err := checkInput(fn, "the input", input); err != nil {
		s.writeError(w, r, err, slog.String("function_id", fn.ID))
		return
	}
	if err := s.admit(fn.Namespace, 1); err != nil {
		s.writeError(w, r, err)
		return
	}
	sub, err := s.submits.do(ctx, submitReq{fn: fn, input: input})
	if err == nil {
		err = sub.err
	}
	err = s.goneFunction(fn, err)
	if err != nil {
		s.writeError(w, r, err, slog.String("function_id", fn.ID))
		return
	}
	s.m.submitted.Inc()
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.LogAttrs(ctx, slog.LevelDebug, "task submitted",
			slog.String("task_id", sub.id), slog.String("function_id", fn.ID))
	}
	b := getBuf()
	*b = append(*b, `{"task_id":`...)
	*b = appendString(*b, sub.id)
	*b = append(*b, "}\n"...)
	writeJSON(w, http.StatusCreated, *b)
	putBuf(b)
}

// executeTarget is the function an execute request names: by function_id, or by
// function_name (the newest registration of that name in the request's namespace).
func (s *Server) executeTarget(ctx context.Context, req executeRequest) (store.Function, error) {
	switch {
	case req.FunctionID != "" && req.FunctionName != "":
		return store.Function{}, badRequest("give function_id or function_name, not both")
	case req.FunctionID != "":
		return s.functionByID(ctx, req.FunctionID)
	case req.FunctionName == "":
		return store.Function{}, badRequest("function_id is required (or function_name, the name of a registered function)")
	}
	if err := checkName(req.FunctionName); err != nil {
		return store.Function{}, fmt.Errorf("function_name: %w", err)
	}
	fn, err := s.st.FunctionIn(ctx, namespace(ctx), req.FunctionName)
	if errors.Is(err, store.ErrNotFound) || err == nil && fn.Name != req.FunctionName {
		// (a name shaped like a uuid may have been taken for an id)
		return store.Function{}, notFound("no function named %q", req.FunctionName)
	}
	return fn, err
}

// goneFunction turns the store's refusal of a function deleted since it was cached (by
// another server, say) into the 404 of an unknown function, and forgets it.
func (s *Server) goneFunction(fn store.Function, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		s.fns.drop(fn.ID)
		return notFound("no function with id %q", fn.ID)
	}
	return err
}

func checkInput(fn store.Function, what string, input []byte) error {
	max := fn.Limits.StdinBytes
	if max <= 0 {
		max = fn.Limits.WithDefaults().StdinBytes
	}
	if int64(len(input)) > max {
		return tooLarge("%s is %d bytes, above the stdin_bytes limit of %d of function %s",
			what, len(input), max, fn.ID)
	}
	return nil
}

// executeBatch handles POST /execute_batch {"function_id", "payloads": [base64, ...]} →
// 201 {"task_ids": [...]}, in input order, submitted in one store call.
func (s *Server) executeBatch(w http.ResponseWriter, r *http.Request) {
	max := (s.cfg.MaxBatchBytes+2)/3*4 + int64(s.cfg.MaxBatch)*8 + 64<<10
	var req batchRequest
	if err := decodeJSON(http.MaxBytesReader(w, r.Body, max), &req); err != nil {
		if isA[*http.MaxBytesError](err) {
			err = tooLarge("the batch body is larger than %d bytes; send at most %d input bytes per request",
				max, s.cfg.MaxBatchBytes)
		}
		s.writeError(w, r, err)
		return
	}
	if req.FunctionID == "" {
		s.writeError(w, r, badRequest("function_id is required"))
		return
	}
	if len(req.Payloads) == 0 {
		s.writeError(w, r, badRequest("payloads is required: a non-empty array of base64 strings"))
		return
	}
	if len(req.Payloads) > s.cfg.MaxBatch {
		s.writeError(w, r, tooLarge("the batch has %d inputs; at most %d are accepted per request",
			len(req.Payloads), s.cfg.MaxBatch))
		return
	}
	ctx := r.Context()
	fn, err := s.functionByID(ctx, req.FunctionID)
	if err != nil {
		s.writeError(w, r, err, slog.String("function_id", req.FunctionID))
		return
	}
	inputs := make([][]byte, len(req.Payloads))
	var total int64
	for i := range req.Payloads {
		p := &req.Payloads[i]
		if p.err != nil || !p.set {
			_, err := p.field(fmt.Sprintf("payloads[%d]", i))
			s.writeError(w, r, err)
			return
		}
		if err := checkInput(fn, fmt.Sprintf("payloads[%d]", i), p.data); err != nil {
			s.writeError(w, r, err, slog.String("function_id", fn.ID))
			return
		}
		inputs[i] = p.data
		total += int64(len(p.data))
	}
	if total > s.cfg.MaxBatchBytes {
		s.writeError(w, r, tooLarge("the batch has %d input bytes; at most %d are accepted per request",
			total, s.cfg.MaxBatchBytes))
		return
	}
	if err := s.admit(fn.Namespace, len(inputs)); err != nil {
		s.writeError(w, r, err)
		return
	}
	ids, err := s.st.SubmitLimited(ctx, fn, inputs, s.quota(fn.Namespace).Tasks)
	if err == nil && len(ids) != len(inputs) {
		err = fmt.Errorf("store.Submit returned %d ids for %d inputs", len(ids), len(inputs))
	}
	if err = s.goneFunction(fn, err); err != nil {
		s.writeError(w, r, err, slog.String("function_id", fn.ID))
		return
	}
	s.m.submitted.Add(float64(len(ids)))
	s.log.LogAttrs(ctx, slog.LevelDebug, "batch submitted",
		slog.String("function_id", fn.ID), slog.Int("tasks", len(ids)))
	b := getBuf()
	*b = append(*b, `{"task_ids":[`...)
	for i, id := range ids {
		if i > 0 {
			*b = append(*b, ',')
		}
		*b = appendString(*b, id)
	}
	*b = append(*b, "]}\n"...)
	writeJSON(w, http.StatusCreated, *b)
	putBuf(b)
}

func taskNotFound(id string) error {
	return notFound("no task with id %q (unknown, expired, or not a uuid)", id)
}

// readTask returns a task's summary (no outputs: see store.Summaries), 404 for a malformed
// or unknown id, or a task of another namespace (answered exactly as an unknown one).
func (s *Server) readTask(r *http.Request, id string) (store.Record, error) {
	rec, err := s.reads.do(r.Context(), id)
	if err == nil && (rec.Status == "" || rec.Namespace != namespace(r.Context())) {
		return store.Record{}, taskNotFound(id)
	}
	return rec, err
}

// routeTask reads the summary of the task named by the route's {task_id}, as readTask: 404
// for a malformed id too.
func (s *Server) routeTask(r *http.Request) (string, store.Record, error) {
	id := mux.Vars(r)["task_id"]
	if !validUUID(id) {
		return id, store.Record{}, taskNotFound(id)
	}
	rec, err := s.readTask(r, id)
	return id, rec, err
}

// status handles GET /status/{task_id} → {"task_id", "status", ...} (no result).
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	id, rec, err := s.routeTask(r)
	if err != nil {
		s.writeError(w, r, err, slog.String("task_id", id))
		return
	}
	s.writeTask(w, &rec, false)
}

// result handles GET /result/{task_id}?wait=DURATION → {"task_id", "status", "result", ...}.
// With wait, a task not yet terminal is watched (before it is read, so that no wake-up is
// missed) and the answer comes when it ends or when wait runs out. The task is watched by
// its summary; its output is read once, at the end, under the server's output budget.
func (s *Server) result(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["task_id"]
	wait, err := s.parseWait(r.URL.Query().Get("wait"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !validUUID(id) {
		s.writeError(w, r, taskNotFound(id))
		return
	}
	var woken <-chan string
	if wait > 0 && s.done != nil {
		ch, stop := s.done.Watch([]string{id})
		defer stop()
		woken = ch
	}
	rec, err := s.readTask(r, id)
	if err == nil && woken != nil && !rec.Status.Terminal() {
		timer := time.NewTimer(wait)
		defer timer.Stop()
	waiting:
		for !rec.Status.Terminal() {
			select {
			case _, ok := <-woken:
				if !ok {
					break waiting
				}
				rec, err = s.readTask(r, id)
				if err != nil {
					break waiting
				}
			case <-timer.C:
				break waiting
			case <-s.stopping:
				break waiting
			case <-r.Context().Done():
				return
			}
		}
	}
	if err != nil {
		s.writeError(w, r, err, slog.String("task_id", id))
		return
	}
	if needsOutputs(&rec) {
		n := rec.OutputBytes
		if !s.takeOutputs(n) {
			s.writeError(w, r, busy("the server is answering as many result bytes as it may "+
				"(%d); try again shortly", s.cfg.MaxInflightResultBytes), slog.String("task_id", id))
			return
		}
		defer s.outputs.give(n)
		if rec, err = s.st.Task(r.Context(), id); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				err = taskNotFound(id)
			}
			s.writeError(w, r, err, slog.String("task_id", id))
			return
		}
	}
	s.writeTask(w, &rec, true)
}

// inlineOutputs is the most output bytes of one task read along with its summary: small
// outputs (the common case) cost no second round trip, and no request holds more than this
// outside the output budget.
const inlineOutputs = 16 << 10

// needsOutputs reports whether rec is a terminal summary whose outputs were left out.
func needsOutputs(rec *store.Record) bool {
	return rec.Status.Terminal() && rec.OutputBytes > 0 && rec.Result == nil && rec.Stderr == nil
}

// takeOutputs reserves n stored output bytes for an answer. One output larger than the
// whole budget is let through when nothing else is being answered, or it could never be read.
func (s *Server) takeOutputs(n int64) bool {
	if n > s.outputs.max {
		return s.outputs.used.CompareAndSwap(0, n)
	}
	return s.outputs.take(n, s.outputs.max)
}

func (s *Server) writeTask(w http.ResponseWriter, rec *store.Record, withResult bool) {
	b := getBuf()
	*b = appendTask(*b, rec, withResult)
	*b = append(*b, '\n')
	writeJSON(w, http.StatusOK, *b)
	putBuf(b)
}

// parseWait parses a wait duration ("" is no wait) and caps it at MaxWait.
func (s *Server) parseWait(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, badRequest("wait %q is not a duration such as 500ms or 2s", v)
	}
	if d < 0 {
		return 0, badRequest("wait %q is negative", v)
	}
	return min(d, s.cfg.MaxWait), nil
}
