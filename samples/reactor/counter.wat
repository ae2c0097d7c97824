;; counter (reactor): a task must start from the snapshot, not from the previous task. The
;; module's data says 100 at address 0 and its global starts at 100; _initialize sets both to
;; 0; run adds 1 to both and writes them: "1 1" in every task. A global not restored would
;; give "101 ...", a data segment applied after the snapshot "... 101", a leaked instance "2 2".
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $n (mut i32) (i32.const 100))
  (data (i32.const 0) "\64\00\00\00")
  (func (export "_initialize")
    (global.set $n (i32.const 0))
    (i32.store (i32.const 0) (i32.const 0)))
  (func (export "run")
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
    (call $print (global.get $n) (i32.const 32))
    (call $print (i32.load (i32.const 0)) (i32.const 0)))
  ;; print writes v in decimal followed by the byte sep (0: none)
  (func $print (param $v i32) (param $sep i32) (local $p i32)
    (local.set $p (i32.const 100))
    (if (local.get $sep) (then
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p) (local.get $sep))))
    (loop $d
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.rem_u (local.get $v) (i32.const 10))))
      (local.set $v (i32.div_u (local.get $v) (i32.const 10)))
      (br_if $d (local.get $v)))
    (i32.store (i32.const 104) (local.get $p))
    (i32.store (i32.const 108) (i32.sub (i32.const 100) (local.get $p)))
    (drop (call $fd_write (i32.const 1) (i32.const 104) (i32.const 1) (i32.const 112)))))
