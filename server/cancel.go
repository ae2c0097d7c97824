package server

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/gorilla/mux"

	"faas/store"
	"faas/task"
)

// Cancelling tasks: POST /tasks/{task_id}/cancel and POST /tasks/cancel {"task_ids": [...]}.
// The store does the work in one script (store/cancel.go): a QUEUED or RUNNING task of the
// request's namespace becomes FAILED kind cancelled at once, and a dispatcher running it
// stops it. A terminal task is left as it is (409 conflict, with its status); another
// namespace's task is answered exactly as an unknown one (404).

const codeConflict = "conflict"

// cancelRequest is the JSON body of POST /tasks/cancel.
type cancelRequest struct {
	TaskIDs []string `json:"task_ids"`
}

// cancelTask handles POST /tasks/{task_id}/cancel → 200 {"task_id", "status": "FAILED",
// "was"}; 409 for a terminal task, 404 for an unknown one.
func (s *Server) cancelTask(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["task_id"]
	if !validUUID(id) {
		s.writeError(w, r, taskNotFound(id))
		return
	}
	got, err := s.st.Cancel(r.Context(), namespace(r.Context()), []string{id})
	if err != nil {
		s.writeError(w, r, err, slog.String("task_id", id))
		return
	}
	c := got[0]
	s.countCancels(got)
	b := getBuf()
	defer putBuf(b)
	switch {
	case c.Done():
		*b = appendCancelled(*b, c)
		writeJSON(w, http.StatusOK, append(*b, '\n'))
	case c.Was == "":
		s.writeError(w, r, taskNotFound(id))
	default:
		*b = appendConflict(*b, c)
		writeJSON(w, http.StatusConflict, append(*b, '\n'))
	}
}

// cancelTasks handles POST /tasks/cancel {"task_ids": [...]} → 200 {"tasks": [...],
// "cancelled": N}: one entry per id, in order, each either cancelled or carrying its error
// (conflict with its status, or not_found). At most store.MaxCancel ids.
func (s *Server) cancelTasks(w http.ResponseWriter, r *http.Request) {
	max := int64(store.MaxCancel)*48 + 4<<10
	var req cancelRequest
	if err := decodeJSON(http.MaxBytesReader(w, r.Body, max), &req); err != nil {
		if isA[*http.MaxBytesError](err) {
			err = tooLarge("the body is larger than %d bytes; cancel at most %d tasks per request", max, store.MaxCancel)
		}
		s.writeError(w, r, err)
		return
	}
	if len(req.TaskIDs) == 0 {
		s.writeError(w, r, badRequest("task_ids is required: a non-empty array of task ids"))
		return
	}
	if len(req.TaskIDs) > store.MaxCancel {
		s.writeError(w, r, tooLarge("%d task ids; at most %d per request", len(req.TaskIDs), store.MaxCancel))
		return
	}
	got, err := s.st.Cancel(r.Context(), namespace(r.Context()), req.TaskIDs)
	if err != nil {
		s.writeError(w, r, err, slog.Int("tasks", len(req.TaskIDs)))
		return
	}
	n := s.countCancels(got)
	b := getBuf()
	defer putBuf(b)
	*b = append(*b, `{"tasks":[`...)
	for i, c := range got {
		if i > 0 {
			*b = append(*b, ',')
		}
		switch {
		case c.Done():
			*b = appendCancelled(*b, c)
		case c.Was == "":
			*b = append(*b, `{"task_id":`...)
			*b = appendString(*b, c.ID)
			*b = append(*b, `,"error":{"code":"not_found","message":`...)
			*b = appendString(*b, taskNotFound(c.ID).Error())
			*b = append(*b, "}}"...)
		default:
			*b = appendConflict(*b, c)
		}
	}
	*b = fmt.Appendf(*b, `],"cancelled":%d}`+"\n", n)
	writeJSON(w, http.StatusOK, *b)
}

// countCancels counts the tasks cancelled, by the status they had, and returns how many.
func (s *Server) countCancels(got []store.Cancelled) int {
	n := 0
	for _, c := range got {
		if c.Done() {
			s.m.cancelled.WithLabelValues(string(c.Was)).Inc()
			n++
		}
	}
	return n
}

func appendCancelled(b []byte, c store.Cancelled) []byte {
	b = append(b, `{"task_id":`...)
	b = appendString(b, c.ID)
	b = append(b, `,"status":"FAILED","was":`...)
	b = appendString(b, string(c.Was))
	b = append(b, `,"error":{"kind":"cancelled","message":`...)
	b = appendString(b, "cancelled while "+string(c.Was))
	return append(b, "}}"...)
}

// appendConflict is the answer for a task that was terminal already: its status (and
// failure kind) beside the error.
func appendConflict(b []byte, c store.Cancelled) []byte {
	b = append(b, `{"task_id":`...)
	b = appendString(b, c.ID)
	b = append(b, `,"status":`...)
	b = appendString(b, string(c.Was))
	msg := fmt.Sprintf("task %s is %s already; only QUEUED or RUNNING tasks can be cancelled", c.ID, c.Was)
	if c.Was == task.Failed && c.Kind != "" {
		msg = fmt.Sprintf("task %s is FAILED (%s) already; only QUEUED or RUNNING tasks can be cancelled", c.ID, c.Kind)
	}
	b = append(b, `,"error":{"code":"`+codeConflict+`","message":`...)
	b = appendString(b, msg)
	return append(b, "}}"...)
}
