package server

import (
	"context"
	"net/http"
	"time"

	"faas/store"
)

// wait handles POST /wait {"task_ids": [...], "wait": "2s"} → 200 {"tasks": [...]}: the
// tasks among task_ids that are terminal now; if none is, it waits (at most wait) until at
// least one ends, and answers those. An unknown id is a 404 naming it.
//
// The answer carries outputs up to MaxWaitResultBytes (and within the server's output
// budget); a task whose output does not fit comes with "result": null and
// "result_omitted": true, to be fetched from /result. Tasks are read and watched by their
// summaries, so ids of tasks with large outputs cost the server nothing until answered.
func (s *Server) wait(w http.ResponseWriter, r *http.Request) {
	max := int64(s.cfg.MaxBatch)*48 + 4<<10
	var req waitRequest
	if err := decodeJSON(http.MaxBytesReader(w, r.Body, max), &req); err != nil {
		if isA[*http.MaxBytesError](err) {
			err = tooLarge("the body is larger than %d bytes; wait for at most %d tasks per request", max, s.cfg.MaxBatch)
		}
		s.writeError(w, r, err)
		return
	}
	wait, err := s.parseWait(req.Wait)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(req.TaskIDs) == 0 {
		s.writeError(w, r, badRequest("task_ids is required: a non-empty array of task ids"))
		return
	}
	if len(req.TaskIDs) > s.cfg.MaxBatch {
		s.writeError(w, r, tooLarge("%d task ids; at most %d per request", len(req.TaskIDs), s.cfg.MaxBatch))
		return
	}
	ids := req.TaskIDs
	if len(ids) > 1 { // drop duplicates, keeping the order
		seen := make(map[string]struct{}, len(ids))
		ids = ids[:0:0]
		for _, id := range req.TaskIDs {
			if _, dup := seen[id]; !dup {
				seen[id] = struct{}{}
				ids = append(ids, id)
			}
		}
	}
	for _, id := range ids {
		if !validUUID(id) {
			s.writeError(w, r, taskNotFound(id))
			return
		}
	}
	var woken <-chan string
	if wait > 0 && s.done != nil {
		ch, stop := s.done.Watch(ids)
		defer stop()
		woken = ch
	}
	ctx := r.Context()
	// Small outputs come along, within 1 MiB per request: the rest is read under the budget.
	inline := min(inlineOutputs, (1<<20)/int64(len(ids)))
	recs, err := s.st.Summaries(ctx, ids, inline)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ns := namespace(ctx)
	for i := range recs {
		if recs[i].Status == "" || recs[i].Namespace != ns { // another namespace's: as unknown
			s.writeError(w, r, taskNotFound(recs[i].ID))
			return
		}
	}
	done := terminalOnly(recs)
	if len(done) == 0 && woken != nil {
		timer := time.NewTimer(wait)
		defer timer.Stop()
	waiting:
		for len(done) == 0 {
			select {
			case id, ok := <-woken:
				if !ok {
					break waiting
				}
				batch := []string{id}
			drain: // more may have ended together: answer them at once
				for {
					select {
					case id, ok := <-woken:
						if !ok {
							break drain
						}
						batch = append(batch, id)
					default:
						break drain
					}
				}
				recs, err = s.st.Summaries(ctx, batch, inline)
				if err != nil {
					s.writeError(w, r, err)
					return
				}
				done = terminalOnly(recs)
			case <-timer.C:
				break waiting
			case <-s.stopping:
				break waiting
			case <-ctx.Done():
				return
			}
		}
	}
	held, err := s.withOutputs(ctx, done)
	defer s.outputs.give(held)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	b := getBuf()
	*b = append(*b, `{"tasks":[`...)
	for i := range done {
		if i > 0 {
			*b = append(*b, ',')
		}
		rec := &done[i]
		if needsOutputs(rec) {
			*b = appendTask(*b, rec, false)
			*b = append((*b)[:len(*b)-1], `,"result":null,"result_omitted":true}`...)
		} else {
			*b = appendTask(*b, rec, true)
		}
	}
	*b = append(*b, "]}\n"...)
	writeJSON(w, http.StatusOK, *b)
	putBuf(b)
}

// withOutputs makes the terminal summaries recs carry the outputs that fit in one /wait
// answer (MaxWaitResultBytes, in order, skipping those too large): small ones read along
// with the summaries are kept, the others read within the server's output budget. It returns
// the bytes it reserved, for the caller to give back once the answer is written. Outputs
// that do not fit are dropped: the answer marks them omitted.
func (s *Server) withOutputs(ctx context.Context, recs []store.Record) (int64, error) {
	var (
		idx          []int
		ids          []string
		total, fetch int64
	)
	for i := range recs {
		n := recs[i].OutputBytes
		switch {
		case n == 0:
		case total+n > s.cfg.MaxWaitResultBytes:
			recs[i].Result, recs[i].Stderr = nil, nil
		case needsOutputs(&recs[i]):
			total += n
			fetch += n
			idx = append(idx, i)
			ids = append(ids, recs[i].ID)
		default: // read along with its summary
			total += n
		}
	}
	if fetch == 0 || !s.outputs.take(fetch, s.outputs.max) {
		return 0, nil // the outputs not read along are omitted: the client fetches them
	}
	full, err := s.st.Tasks(ctx, ids)
	if err != nil {
		return fetch, err
	}
	for j, i := range idx {
		if full[j].Status.Terminal() { // an expired one keeps its summary: omitted
			recs[i] = full[j]
		}
	}
	return fetch, nil
}

func terminalOnly(recs []store.Record) []store.Record {
	out := recs[:0]
	for _, rec := range recs {
		if rec.Status.Terminal() {
			out = append(out, rec)
		}
	}
	return out
}
