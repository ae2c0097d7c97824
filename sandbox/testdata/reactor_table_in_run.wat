;; A reactor whose _initialize grows memory and whose run grows a table: the table budget
;; (tablegrow.go) changes during _initialize by the memory growth only, which the snapshot
;; must not take for a table growth. run writes "ok".
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory 1)
  (table $t 1 funcref)
  (data (i32.const 64) "ok")
  (func (export "_initialize") (drop (memory.grow (i32.const 2))))
  (func (export "run")
    (drop (table.grow $t (ref.null func) (i32.const 4)))
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 2))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
