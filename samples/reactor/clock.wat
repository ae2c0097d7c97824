;; clock (reactor): _initialize reads the monotonic clock into address 0; run reads it again
;; and writes "ok" when it did not go backwards, "backwards" otherwise.
(module
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "okbackwards")
  (func (export "_initialize") (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 0))))
  (func (export "run")
    (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 8)))
    (if (i64.ge_u (i64.load (i32.const 8)) (i64.load (i32.const 0)))
      (then (i32.store (i32.const 32) (i32.const 64)) (i32.store (i32.const 36) (i32.const 2)))
      (else (i32.store (i32.const 32) (i32.const 66)) (i32.store (i32.const 36) (i32.const 9))))
    (drop (call $fd_write (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 40)))))
