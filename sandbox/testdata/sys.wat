;; Shows the host facilities a function gets. Writes to stdout, raw little-endian:
;; wall clock ns (8 bytes) | monotonic ns (8) | environment variable count (4) |
;; 16 random bytes | argv[0] (the rest).
(module
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $envs (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $rand (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $argsz (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (local $argc i32) (local $len i32)
    (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 1024)))   ;; realtime -> 1024
    (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 1032)))   ;; monotonic -> 1032
    (drop (call $envs (i32.const 1040) (i32.const 2048)))               ;; count -> 1040
    (drop (call $rand (i32.const 1044) (i32.const 16)))                 ;; 16 bytes -> 1044
    (drop (call $argsz (i32.const 2052) (i32.const 2056)))
    (drop (call $args (i32.const 2064) (i32.const 1060)))               ;; argv strings -> 1060
    ;; argv[0] is NUL-terminated; write 36 + len(argv[0]) bytes
    (local.set $len (i32.sub (i32.load (i32.const 2056)) (i32.const 1)))
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.add (i32.const 36) (local.get $len)))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
