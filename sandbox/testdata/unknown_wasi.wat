;; Imports a function WASI preview1 does not have. Refused.
(module (import "wasi_snapshot_preview1" "sock_connect" (func (param i32)))
  (func (export "_start")))
