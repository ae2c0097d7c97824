package server

// Test-only access, for the external tests (package server_test).

// HoldOutputs reserves n bytes of s's output budget, as answers in flight would, until
// release is called.
func HoldOutputs(s *Server, n int64) (release func()) {
	if !s.outputs.take(n, s.outputs.max) {
		panic("HoldOutputs: the budget is already spent")
	}
	return func() { s.outputs.give(n) }
}
