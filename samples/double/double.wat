;; double (WAT): reads a decimal integer from stdin (surrounding whitespace ignored) and
;; writes twice it in decimal, with no newline. Anything else: a message on stderr, exit 2.
(module
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))

  ;; 0..8: iovec, 8..12: nread/nwritten, 16..48: message, 64..96: digits, 1024..: input
  (memory (export "memory") 1)
  (data (i32.const 16) "double: not an integer\n")

  (func $fail
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 23))
    (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $proc_exit (i32.const 2))
    unreachable)

  (func $space (param $c i32) (result i32)
    (i32.or
      (i32.or (i32.eq (local.get $c) (i32.const 32)) (i32.eq (local.get $c) (i32.const 10)))
      (i32.or (i32.eq (local.get $c) (i32.const 13)) (i32.eq (local.get $c) (i32.const 9)))))

  (func (export "_start")
    (local $len i32) (local $i i32) (local $c i32) (local $neg i32) (local $digits i32)
    (local $n i64) (local $p i32)
    ;; read all of stdin into 1024.. (up to 60 KiB)
    (block $eof
      (loop $read
        (i32.store (i32.const 0) (i32.add (i32.const 1024) (local.get $len)))
        (i32.store (i32.const 4) (i32.sub (i32.const 61440) (local.get $len)))
        (br_if $eof (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
        (br_if $eof (i32.eqz (i32.load (i32.const 8))))
        (local.set $len (i32.add (local.get $len) (i32.load (i32.const 8))))
        (br_if $read (i32.lt_u (local.get $len) (i32.const 61440)))))
    ;; skip leading whitespace
    (block $done
      (loop $skip
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (br_if $done (i32.eqz (call $space (i32.load8_u offset=1024 (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $skip)))
    ;; optional sign
    (if (i32.lt_u (local.get $i) (local.get $len))
      (then
        (local.set $c (i32.load8_u offset=1024 (local.get $i)))
        (if (i32.eq (local.get $c) (i32.const 45))
          (then (local.set $neg (i32.const 1)) (local.set $i (i32.add (local.get $i) (i32.const 1))))
          (else (if (i32.eq (local.get $c) (i32.const 43))
            (then (local.set $i (i32.add (local.get $i) (i32.const 1)))))))))
    ;; digits
    (block $end
      (loop $num
        (br_if $end (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $c (i32.sub (i32.load8_u offset=1024 (local.get $i)) (i32.const 48)))
        (br_if $end (i32.gt_u (local.get $c) (i32.const 9)))
        (local.set $n (i64.add (i64.mul (local.get $n) (i64.const 10)) (i64.extend_i32_u (local.get $c))))
        (local.set $digits (i32.add (local.get $digits) (i32.const 1)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $num)))
    (if (i32.eqz (local.get $digits)) (then (call $fail)))
    ;; trailing whitespace only
    (block $tdone
      (loop $trail
        (br_if $tdone (i32.ge_u (local.get $i) (local.get $len)))
        (if (i32.eqz (call $space (i32.load8_u offset=1024 (local.get $i)))) (then (call $fail)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $trail)))
    (local.set $n (i64.shl (local.get $n) (i64.const 1)))
    (if (local.get $neg) (then (local.set $n (i64.sub (i64.const 0) (local.get $n)))))
    ;; format backwards from 96; negative numbers go through their magnitude (unsigned)
    (local.set $p (i32.const 96))
    (local.set $neg (i64.lt_s (local.get $n) (i64.const 0)))
    (if (local.get $neg) (then (local.set $n (i64.sub (i64.const 0) (local.get $n)))))
    (loop $fmt
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i64.store8 (local.get $p) (i64.add (i64.rem_u (local.get $n) (i64.const 10)) (i64.const 48)))
      (local.set $n (i64.div_u (local.get $n) (i64.const 10)))
      (br_if $fmt (i64.ne (local.get $n) (i64.const 0))))
    (if (local.get $neg)
      (then
        (local.set $p (i32.sub (local.get $p) (i32.const 1)))
        (i32.store8 (local.get $p) (i32.const 45))))
    (i32.store (i32.const 0) (local.get $p))
    (i32.store (i32.const 4) (i32.sub (i32.const 96) (local.get $p)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
