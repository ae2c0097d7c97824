;; grow (reactor): run grows memory by 16 pages (1 MiB) and writes the number of pages it
;; then has, in decimal. A fresh instance starts with 1 page: "17" in every task.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "run") (local $v i32) (local $p i32)
    (drop (memory.grow (i32.const 16)))
    (local.set $v (memory.size))
    (local.set $p (i32.const 100))
    (loop $d
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.rem_u (local.get $v) (i32.const 10))))
      (local.set $v (i32.div_u (local.get $v) (i32.const 10)))
      (br_if $d (local.get $v)))
    (i32.store (i32.const 104) (local.get $p))
    (i32.store (i32.const 108) (i32.sub (i32.const 100) (local.get $p)))
    (drop (call $fd_write (i32.const 1) (i32.const 104) (i32.const 1) (i32.const 112)))))
