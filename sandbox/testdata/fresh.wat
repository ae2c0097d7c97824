;; Proves each task gets a fresh instance: writes the byte at address 0 of memory and the
;; value of a mutable global (both 'a' at instantiation) to stdout, then increments both.
;; Every run must print "aa".
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $g (mut i32) (i32.const 97))
  (data (i32.const 0) "a")
  (func (export "_start")
    (i32.store8 (i32.const 1) (global.get $g))
    (i32.store (i32.const 16) (i32.const 0))
    (i32.store (i32.const 20) (i32.const 2))
    (drop (call $w (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))
    (i32.store8 (i32.const 0) (i32.add (i32.load8_u (i32.const 0)) (i32.const 1)))
    (global.set $g (i32.add (global.get $g) (i32.const 1)))))
