package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"faas/internal/metrics/metricstest"
	"faas/samples"
	"faas/server"
	"faas/store"
	"faas/task"
)

// TestCancelRoutes: QUEUED and RUNNING tasks are cancelled at once (FAILED cancelled, read
// back by /status), a terminal one is a 409 conflict naming its status, an unknown or
// malformed id a 404; the list route answers per id.
func TestCancelRoutes(t *testing.T) {
	e := newEnv(t, server.Config{})
	fn := e.register(t, "noop", samples.Noop, nil)
	done := e.execute(t, fn, []byte("c"))
	e.finish(t, echoOutcome)
	running := e.execute(t, fn, []byte("a"))
	if ts, err := e.st.Claim(ctxT(t), "test", 1); err != nil || len(ts) != 1 {
		t.Fatalf("Claim: %v %v", ts, err)
	}
	queued := e.execute(t, fn, []byte("b"))

	for id, was := range map[string]string{queued: "QUEUED", running: "RUNNING"} {
		a := e.postJSON(t, "/tasks/"+id+"/cancel", "").want(t, http.StatusOK)
		if a.str("task_id") != id || a.str("status") != "FAILED" || a.str("was") != was {
			t.Errorf("cancel of a %s task: %s", was, a.raw)
		}
		st := e.get(t, "/status/"+id).want(t, http.StatusOK)
		if errObj, _ := st.obj["error"].(map[string]any); st.str("status") != "FAILED" || errObj["kind"] != "cancelled" {
			t.Errorf("status after cancel: %s", st.raw)
		}
	}
	// Terminal: left alone, 409 with its status.
	a := e.postJSON(t, "/tasks/"+done+"/cancel", "")
	if a.status != http.StatusConflict || a.str("status") != "COMPLETED" || !strings.Contains(string(a.raw), `"code":"conflict"`) {
		t.Errorf("cancel of a COMPLETED task: %d %s", a.status, a.raw)
	}
	a = e.postJSON(t, "/tasks/"+queued+"/cancel", "")
	if a.status != http.StatusConflict || a.str("status") != "FAILED" || !strings.Contains(string(a.raw), "FAILED (cancelled)") {
		t.Errorf("second cancel: %d %s", a.status, a.raw)
	}
	if r, _ := e.st.Task(ctxT(t), done); r.Status != task.Completed {
		t.Errorf("the COMPLETED task became %s", r.Status)
	}
	unknown := uuid.NewString()
	e.postJSON(t, "/tasks/"+unknown+"/cancel", "").wantError(t, http.StatusNotFound, "not_found", unknown)
	e.postJSON(t, "/tasks/not-a-uuid/cancel", "").wantError(t, http.StatusNotFound, "not_found")
	e.get(t, "/tasks/"+unknown+"/cancel").wantError(t, http.StatusMethodNotAllowed, "bad_request")

	// The list route: per-id answers, in order.
	more := e.execute(t, fn, []byte("d"))
	a = e.postJSON(t, "/tasks/cancel", jsonBody(map[string]any{"task_ids": []string{more, done, unknown, "x"}})).want(t, http.StatusOK)
	results, _ := a.obj["tasks"].([]any)
	if len(results) != 4 || a.obj["cancelled"] != float64(1) {
		t.Fatalf("list cancel: %s", a.raw)
	}
	codes := []string{"", "conflict", "not_found", "not_found"}
	for i, r := range results {
		m := r.(map[string]any)
		errObj, _ := m["error"].(map[string]any)
		if i == 0 {
			if m["status"] != "FAILED" || m["was"] != "QUEUED" || errObj["kind"] != "cancelled" {
				t.Errorf("entry 0: %v", m)
			}
			continue
		}
		if errObj["code"] != codes[i] {
			t.Errorf("entry %d: %v, want code %s", i, m, codes[i])
		}
	}
	e.postJSON(t, "/tasks/cancel", `{"task_ids":[]}`).wantError(t, http.StatusBadRequest, "bad_request", "task_ids")
	e.postJSON(t, "/tasks/cancel", `{"ids":["x"]}`).wantError(t, http.StatusBadRequest, "bad_request")
	many := make([]string, store.MaxCancel+1)
	for i := range many {
		many[i] = unknown
	}
	e.postJSON(t, "/tasks/cancel", jsonBody(map[string]any{"task_ids": many})).wantError(t, http.StatusRequestEntityTooLarge, "too_large", "1000")

	// Counted once each, by what they were.
	metricstest.Scrape(t, e.url+"/metrics").Want(t, map[string]float64{
		`faas_tasks_cancelled_total{was="QUEUED"}`:  2,
		`faas_tasks_cancelled_total{was="RUNNING"}`: 1,
	})
}

// TestCancelOtherNamespace: another namespace's task is answered exactly as an unknown one,
// on both routes, and is left QUEUED.
func TestCancelOtherNamespace(t *testing.T) {
	e := newTenantEnv(t, "")
	fn := e.registerAs(t, keyA, "noop", samples.Noop)
	id := e.executeAs(t, keyA, fn, "x").want(t, http.StatusCreated).str("task_id")
	unknown := uuid.NewString()
	theirs := e.as(t, keyB, http.MethodPost, "/tasks/"+id+"/cancel", "application/json", nil)
	none := e.as(t, keyB, http.MethodPost, "/tasks/"+unknown+"/cancel", "application/json", nil)
	if theirs.status != http.StatusNotFound || strings.ReplaceAll(string(theirs.raw), id, unknown) != string(none.raw) {
		t.Errorf("another namespace's task: %d %s; an unknown one: %d %s", theirs.status, theirs.raw, none.status, none.raw)
	}
	list := e.as(t, keyB, http.MethodPost, "/tasks/cancel", "application/json", []byte(jsonBody(map[string]any{"task_ids": []string{id}})))
	if list.status != http.StatusOK || !strings.Contains(string(list.raw), `"code":"not_found"`) || list.obj["cancelled"] != float64(0) {
		t.Errorf("list cancel from another namespace: %d %s", list.status, list.raw)
	}
	if r, err := e.st.Task(context.Background(), id); err != nil || r.Status != task.Queued {
		t.Errorf("the task is %s (%v), want still QUEUED", r.Status, err)
	}
	// Its own namespace can.
	e.as(t, keyA, http.MethodPost, "/tasks/"+id+"/cancel", "application/json", nil).want(t, http.StatusOK)
	e.as(t, "", http.MethodPost, "/tasks/"+id+"/cancel", "application/json", nil).want(t, http.StatusUnauthorized)
}
