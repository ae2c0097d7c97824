package dispatch

import (
	"context"
	"time"

	"faas/protocol"
	"faas/task"
)

// This file holds how the hub serves modules to workers: from a small cache, or fetched
// from the store once per hash however many workers wait for it.

// moduleCacheSize and moduleCacheBytes bound the modules the hub keeps in memory.
const (
	moduleCacheSize  = 64
	moduleCacheBytes = 128 << 20
)

// moduleFetchTimeout bounds one module fetch from the store.
const moduleFetchTimeout = 10 * time.Second

// moduleRequested answers from the cache or starts one fetch per hash.
func (h *hub) moduleRequested(env [][]byte, m protocol.ModuleRequest) {
	if wasm, ok := h.modules[m.Hash]; ok {
		h.sendModule(env[0], protocol.Module{Hash: m.Hash, Wasm: wasm})
		return
	}
	waiting, busy := h.fetching[m.Hash]
	for _, r := range waiting {
		if string(r) == string(env[0]) {
			return // it is answered once, when the fetch lands
		}
	}
	h.fetching[m.Hash] = append(waiting, append([]byte(nil), env[0]...))
	if busy {
		return
	}
	h.fetches.Add(1)
	go func(hash string) {
		defer h.fetches.Done()
		ctx, cancel := context.WithTimeout(h.fetchCtx, moduleFetchTimeout)
		defer cancel()
		wasm, err := h.c.st.Module(ctx, hash)
		mod := &protocol.Module{Hash: hash, Wasm: wasm}
		if err != nil {
			mod.Err = err.Error()
		}
		h.box.Put(hubEvent{module: mod})
	}(m.Hash)
}

// moduleFetched caches a fetched module and answers every worker waiting for it.
func (h *hub) moduleFetched(m protocol.Module) {
	if m.Err == "" && len(m.Wasm) > protocol.MaxMessageBytes-1<<10 {
		m = protocol.Module{Hash: m.Hash, Err: "module larger than the protocol's message bound"}
	}
	if m.Err == "" {
		for k, b := range h.modules { // make room: drop any, until it fits
			if len(h.modules) < moduleCacheSize && h.moduleBytes+len(m.Wasm) <= moduleCacheBytes {
				break
			}
			delete(h.modules, k)
			h.moduleBytes -= len(b)
		}
		if len(m.Wasm) <= moduleCacheBytes {
			h.modules[m.Hash] = m.Wasm
			h.moduleBytes += len(m.Wasm)
		}
	} else {
		h.log.Error("fetching a module for workers failed", "hash", m.Hash, "err", m.Err)
	}
	for _, route := range h.fetching[m.Hash] {
		h.sendModule(route, m)
	}
	delete(h.fetching, m.Hash)
}

// moduleChecked answers a module request of a worker that was not sent a task of that
// module in this run, but holds tasks from before (a restart): the module goes to it only
// if the store says one of those tasks was sent on its connection and runs that module.
func (h *hub) moduleChecked(env [][]byte, m protocol.ModuleRequest, w *remoteWorker) {
	refs := append([]task.Ref(nil), w.foreigns...)
	route := append([]byte(nil), env[0]...)
	via := w.via
	h.fetches.Add(1)
	go func() {
		defer h.fetches.Done()
		ctx, cancel := context.WithTimeout(h.fetchCtx, moduleFetchTimeout)
		defer cancel()
		mod := &protocol.Module{Hash: m.Hash}
		ok, err := h.c.st.SentModule(ctx, via, m.Hash, refs)
		switch {
		case err != nil:
			mod.Err = err.Error()
		case !ok:
			mod.Err = "no task of this module was sent to this worker"
		default:
			if mod.Wasm, err = h.c.st.Module(ctx, m.Hash); err != nil {
				mod.Err = err.Error()
			}
		}
		if mod.Err == "" && len(mod.Wasm) > protocol.MaxMessageBytes-1<<10 {
			mod.Wasm, mod.Err = nil, "module larger than the protocol's message bound"
		}
		h.box.Put(hubEvent{module: mod, to: route, refused: err == nil && !ok})
	}()
}
