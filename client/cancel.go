package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

// MaxCancel is how many ids the server takes in one POST /tasks/cancel; CancelMany sends
// longer lists in chunks of it.
const MaxCancel = 1000

// Cancelled is the answer for one task of Cancel or CancelMany.
type Cancelled struct {
	TaskID string `json:"task_id"`
	// Status is FAILED when the task was cancelled; when Err is a conflict, the status it
	// had already (COMPLETED or FAILED); empty when not found.
	Status string `json:"status"`
	// Was is the status the task had when it was cancelled: QUEUED or RUNNING.
	Was string `json:"was,omitempty"`
	// Err is why this task was not cancelled (CancelMany only): code conflict (it was
	// terminal already) or not_found. Nil when it was.
	Err *APIError `json:"-"`
}

// Cancel cancels one task: QUEUED or RUNNING, it becomes FAILED with kind cancelled at once
// (a running one is stopped where it runs). A task that ended already is an *APIError with
// code conflict (StatusCode 409); an unknown one, code not_found.
func (c *Client) Cancel(ctx context.Context, taskID string) (Cancelled, error) {
	var out Cancelled
	_, err := c.do(ctx, http.MethodPost, "/tasks/"+url.PathEscape(taskID)+"/cancel", "application/json", nil, &out)
	return out, err
}

// CancelMany cancels tasks by id, MaxCancel per request, and returns one Cancelled per id,
// in order; a task that could not be cancelled carries its reason in Err. The error is
// about a request as a whole (the server unreachable, ...): the ids of earlier chunks were
// cancelled by then.
func (c *Client) CancelMany(ctx context.Context, taskIDs []string) ([]Cancelled, error) {
	out := make([]Cancelled, 0, len(taskIDs))
	for len(taskIDs) > 0 {
		chunk := taskIDs[:min(len(taskIDs), MaxCancel)]
		taskIDs = taskIDs[len(chunk):]
		body, err := json.Marshal(struct {
			TaskIDs []string `json:"task_ids"`
		}{chunk})
		if err != nil {
			return out, err
		}
		var ans struct {
			Tasks []struct {
				Cancelled
				Error *struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			} `json:"tasks"`
		}
		if _, err := c.do(ctx, http.MethodPost, "/tasks/cancel", "application/json", body, &ans); err != nil {
			return out, err
		}
		if len(ans.Tasks) != len(chunk) {
			return out, fmt.Errorf("faas server: POST /tasks/cancel: %d answers for %d ids", len(ans.Tasks), len(chunk))
		}
		for _, t := range ans.Tasks {
			if t.Error != nil && t.Error.Code != "" {
				status := http.StatusNotFound
				if t.Error.Code == "conflict" {
					status = http.StatusConflict
				}
				t.Cancelled.Err = &APIError{StatusCode: status, Code: t.Error.Code, Message: t.Error.Message}
			}
			out = append(out, t.Cancelled)
		}
	}
	return out, nil
}
