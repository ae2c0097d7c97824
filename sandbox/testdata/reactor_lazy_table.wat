;; A reactor whose table 0 the instrumentation fills lazily (lazytable.go): run reads a slot
;; number (decimal) from stdin, calls it with call_indirect (type () -> i32) and writes the
;; result as a digit; with input "all" it calls slots 2, 3, 4 and 8 and writes their digits.
;; Slots: 2 a=1, 3 b=2, 4 d=4 (segment 2 overwrites segment 1's c), 8 e=5, 9 null,
;; 10 f (another type), the rest null; the table has 16 slots. _initialize calls slot 3 too,
;; so the pre-initialization fills a slot the snapshot does not keep.
;; reactor_eager_table.wat is the same module with a table.get that keeps the eager fill.
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (type $v_i (func (result i32)))
  (memory 1)
  (table 16 funcref)
  (global $seen (mut i32) (i32.const 0))
  (elem (i32.const 2) $a $b $c)
  (elem (i32.const 4) $d)
  (elem (i32.const 8) funcref (ref.func $e) (ref.null func) (ref.func $f))
  (func $a (result i32) (i32.const 1))
  (func $b (result i32) (i32.const 2))
  (func $c (result i32) (i32.const 3))
  (func $d (result i32) (i32.const 4))
  (func $e (result i32) (i32.const 5))
  (func $f (param i32) (result i32) (local.get 0))
  (func (export "_initialize")
    (global.set $seen (call_indirect (type $v_i) (i32.const 3))))
  ;; out(v): appends the digit '0'+v at memory[200 + len], len in memory[196]
  (func $out (param $v i32)
    (i32.store8 (i32.add (i32.const 200) (i32.load (i32.const 196)))
      (i32.add (i32.const 48) (local.get $v)))
    (i32.store (i32.const 196) (i32.add (i32.load (i32.const 196)) (i32.const 1))))
  (func (export "run")
    (local $n i32) (local $i i32) (local $c i32)
    ;; read up to 16 bytes of input at 100
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 16))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (if (i32.eq (i32.load8_u (i32.const 100)) (i32.const 97)) ;; 'a': all
      (then
        (call $out (call_indirect (type $v_i) (i32.const 2)))
        (call $out (call_indirect (type $v_i) (i32.const 3)))
        (call $out (call_indirect (type $v_i) (i32.const 4)))
        (call $out (call_indirect (type $v_i) (i32.const 8)))
        (call $out (call_indirect (type $v_i) (i32.const 2)))
        (call $out (global.get $seen)))
      (else
        (block $done
          (loop $digits
            (br_if $done (i32.ge_u (local.get $i) (i32.load (i32.const 8))))
            (local.set $c (i32.load8_u (i32.add (i32.const 100) (local.get $i))))
            (br_if $done (i32.or (i32.lt_u (local.get $c) (i32.const 48)) (i32.gt_u (local.get $c) (i32.const 57))))
            (local.set $n (i32.add (i32.mul (local.get $n) (i32.const 10)) (i32.sub (local.get $c) (i32.const 48))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $digits)))
        (call $out (call_indirect (type $v_i) (local.get $n)))))
    (i32.store (i32.const 0) (i32.const 200))
    (i32.store (i32.const 4) (i32.load (i32.const 196)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
