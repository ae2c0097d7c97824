package testutil

// Valid WASI command modules, within every structural limit of the sandbox, that are costly
// to compile: for the tests of compilation in a bounded child process.

// SlowCompile is a module of funcs functions of 9,000 empty loops each; wazero takes time
// growing with the square of a function's blocks (~0.3 s per function on a 2-core VM). pad
// is a custom section: another pad, another module hash.
func SlowCompile(funcs int, pad byte) []byte {
	body := []byte{0} // no locals
	for range 9000 {
		body = append(body, 0x03, 0x40, 0x0b) // loop end
	}
	return module(append(body, 0x0b), funcs, pad)
}

// WideCompile is a module whose function pushes values constants and drops them: every one
// is live at once, and wazero's compiler keeps ~200 bytes per value (2,000,000 values:
// ~400 MB resident).
func WideCompile(values int) []byte {
	body := []byte{0}
	for range values {
		body = append(body, 0x41, 0) // i32.const 0
	}
	for range values {
		body = append(body, 0x1a) // drop
	}
	return module(append(body, 0x0b), 1, 0)
}

// module is a module of one type () -> (), an empty exported _start and funcs functions with
// body, then a custom section "pad" holding pad.
func module(body []byte, funcs int, pad byte) []byte {
	m := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	m = appendSection(m, 1, []byte{1, 0x60, 0, 0})
	fns := appendLEB(nil, funcs+1)
	for range funcs + 1 {
		fns = append(fns, 0)
	}
	m = appendSection(m, 3, fns)
	m = appendSection(m, 7, append([]byte{1, 6}, append([]byte("_start"), 0, 0)...))
	code := appendLEB(nil, funcs+1)
	code = append(code, 2, 0, 0x0b) // _start: no locals, end
	for range funcs {
		code = appendLEB(code, len(body))
		code = append(code, body...)
	}
	m = appendSection(m, 10, code)
	return appendSection(m, 0, []byte{3, 'p', 'a', 'd', pad})
}

func appendSection(m []byte, id byte, body []byte) []byte {
	return append(appendLEB(append(m, id), len(body)), body...)
}

func appendLEB(b []byte, n int) []byte {
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if n == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
