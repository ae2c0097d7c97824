package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"faas/store"
	"faas/task"
)

// register handles POST /register_function: a JSON body {"name", "payload", "limits"?}, or
// the raw module with Content-Type application/wasm, ?name= and limits as query parameters.
func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	var (
		name   string
		wasm   []byte
		limits task.Limits
		err    error
	)
	if isWasm(r.Header.Get("Content-Type")) {
		name, wasm, limits, err = s.readRawRegister(w, r)
	} else {
		name, wasm, limits, err = s.readJSONRegister(w, r)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := checkName(name); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := limits.Check(s.cfg.MaxLimits); err != nil {
		s.writeError(w, r, err)
		return
	}
	if int64(len(wasm)) > s.cfg.MaxModuleBytes {
		s.writeError(w, r, s.moduleTooLarge())
		return
	}
	ctx := r.Context()
	ns := namespace(ctx)
	limits, err = s.nsLimits(ns, limits, limits.WithDefaults())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	info, err := s.sb.Validate(ctx, wasm, limits)
	if err != nil {
		s.writeError(w, r, err, slog.String("name", name))
		return
	}
	f := store.Function{
		ID:         uuid.NewString(),
		Name:       name,
		ModuleHash: info.Hash,
		ModuleSize: info.Size,
		ABI:        info.ABI,
		Limits:     limits,
		CreatedAt:  time.Now().UTC(),
		Namespace:  ns,
	}
	if err := s.st.Register(ctx, f, wasm, s.quota(ns).ModuleBytes); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.fns.put(f)
	s.log.Info("function registered", slog.String("function_id", f.ID), slog.String("name", name), slog.String("namespace", ns),
		slog.String("module_sha256", info.Hash), slog.Int64("size", info.Size), slog.String("abi", info.ABI))
	b := getBuf()
	*b = append(*b, `{"function_id":`...)
	*b = appendString(*b, f.ID)
	*b = append(*b, "}\n"...)
	writeJSON(w, http.StatusCreated, *b)
	putBuf(b)
}

func isWasm(contentType string) bool {
	mt := mediaType(contentType)
	return mt == "application/wasm" || mt == "application/octet-stream"
}

func (s *Server) moduleTooLarge() error {
	return tooLarge("the module is larger than the server's limit of %d bytes", s.cfg.MaxModuleBytes)
}

func (s *Server) readRawRegister(w http.ResponseWriter, r *http.Request) (string, []byte, task.Limits, error) {
	var limits task.Limits
	q := r.URL.Query()
	for _, p := range []struct {
		name string
		dst  *int64
	}{
		{"timeout_ms", &limits.TimeoutMs},
		{"memory_mb", &limits.MemoryMB},
		{"stdout_bytes", &limits.StdoutBytes},
		{"stdin_bytes", &limits.StdinBytes},
		{"cpu_units", &limits.CPUUnits},
	} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return "", nil, limits, badRequest("query parameter %s=%q is not an integer", p.name, v)
		}
		*p.dst = n
	}
	if r.ContentLength > s.cfg.MaxModuleBytes {
		return "", nil, limits, s.moduleTooLarge()
	}
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxModuleBytes)
	wasm, err := readBody(body)
	if err != nil {
		if isA[*http.MaxBytesError](err) {
			return "", nil, limits, s.moduleTooLarge()
		}
		if errors.Is(err, errBusy) {
			return "", nil, limits, err
		}
		return "", nil, limits, badRequest("reading the module: %v", err)
	}
	return q.Get("name"), wasm, limits, nil
}

func (s *Server) readJSONRegister(w http.ResponseWriter, r *http.Request) (string, []byte, task.Limits, error) {
	// base64 makes the module 4/3 larger; leave room for the name and the limits.
	max := (s.cfg.MaxModuleBytes+2)/3*4 + 64<<10
	var req registerRequest
	body := bufio.NewReader(http.MaxBytesReader(w, r.Body, max))
	if magic, _ := body.Peek(4); string(magic) == "\x00asm" {
		return "", nil, task.Limits{}, badRequest("the body is a raw Wasm module: send it with " +
			"Content-Type: application/wasm and ?name=NAME, or as base64 in a JSON body {\"name\", \"payload\"}")
	}
	if err := decodeJSON(body, &req); err != nil {
		if isA[*http.MaxBytesError](err) {
			return "", nil, task.Limits{}, s.moduleTooLarge()
		}
		return "", nil, task.Limits{}, err
	}
	wasm, err := req.Payload.field("payload")
	if err != nil {
		return "", nil, task.Limits{}, err
	}
	var limits task.Limits
	if req.Limits != nil {
		limits = *req.Limits
	}
	return req.Name, wasm, limits, nil
}

// checkName enforces the contract's name rule: 1–128 characters of A-Z a-z 0-9 . _ -
func checkName(name string) error {
	if name == "" {
		return badRequest("name is required (1-128 characters of A-Z a-z 0-9 . _ -)")
	}
	if len(name) > 128 {
		return badRequest("name is %d characters long; at most 128 are allowed", len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return badRequest("name %q has a character outside A-Z a-z 0-9 . _ - at position %d", name, i+1)
		}
	}
	return nil
}

// functions handles GET /functions: every function, newest first.
func (s *Server) functions(w http.ResponseWriter, r *http.Request) {
	fns, err := s.st.FunctionsIn(r.Context(), namespace(r.Context()))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if fns == nil {
		fns = []store.Function{}
	}
	s.writeValue(w, r, http.StatusOK, struct {
		Functions []store.Function `json:"functions"`
	}{fns})
}

// function handles GET /functions/{id_or_name}: a function by id, or the newest with a name.
func (s *Server) function(w http.ResponseWriter, r *http.Request) {
	key := mux.Vars(r)["id_or_name"]
	ns := namespace(r.Context())
	f, ok := s.fns.get(key)
	if !ok || f.Namespace != ns {
		var err error
		f, err = s.st.FunctionIn(r.Context(), ns, key)
		if errors.Is(err, store.ErrNotFound) {
			err = notFound("no function with id or name %q", key)
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if f.ID == key {
			s.fns.put(f)
		}
	}
	s.writeValue(w, r, http.StatusOK, f)
}

// deleteFunction handles DELETE /functions/{id_or_name}: the function by id, or the newest
// with a name, of the caller's namespace. Its queued tasks become FAILED when claimed.
func (s *Server) deleteFunction(w http.ResponseWriter, r *http.Request) {
	key := mux.Vars(r)["id_or_name"]
	ns := namespace(r.Context())
	d, err := s.st.DeleteFunction(r.Context(), ns, key)
	if errors.Is(err, store.ErrNotFound) {
		err = notFound("no function with id or name %q", key)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.fns.drop(d.Function.ID)
	if d.ModuleDeleted && s.sb != nil {
		// The validation cache of this server; dispatchers hear it from the store.
		if err := s.sb.Evict(r.Context(), d.Function.ModuleHash); err != nil {
			s.log.Warn("evicting a deleted module from the validation cache failed", "hash", d.Function.ModuleHash, "err", err)
		}
	}
	s.log.Info("function deleted", slog.String("function_id", d.Function.ID), slog.String("name", d.Function.Name),
		slog.String("namespace", ns), slog.Bool("module_deleted", d.ModuleDeleted))
	s.writeValue(w, r, http.StatusOK, struct {
		ID            string `json:"function_id"`
		Name          string `json:"name"`
		ModuleDeleted bool   `json:"module_deleted"`
	}{d.Function.ID, d.Function.Name, d.ModuleDeleted})
}

// healthz handles GET /healthz: 503 when Redis does not answer a PING; else 200 with
// "ok", or "degraded" and the reason when no dispatcher is alive (live.go).
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.st.Ping(ctx); err != nil {
		if !errors.Is(err, store.ErrUnavailable) {
			err = fmt.Errorf("%w: %w", store.ErrUnavailable, err)
		}
		s.writeError(w, r, err)
		return
	}
	s.healthAnswer(ctx, w, r)
}

// writeValue answers v with encoding/json, for answers off the hot paths.
func (s *Server) writeValue(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, status, append(b, '\n'))
}
