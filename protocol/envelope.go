package protocol

// This file splits a ROUTER's routing envelope from a message body.

// SplitEnvelope splits a message received on a ROUTER into its routing envelope (every
// frame up to and including the first empty delimiter) and its body. Workers' REQ sockets
// add the delimiter themselves (and a request id before it, with REQ_CORRELATE); DEALER
// workers send an empty first frame so that both look alike. ok is false when there is no
// delimiter.
func SplitEnvelope(frames [][]byte) (env, body [][]byte, ok bool) {
	for i, f := range frames {
		if len(f) == 0 {
			return frames[:i+1], frames[i+1:], i > 0
		}
	}
	return nil, nil, false
}

// Delimiter is the empty frame DEALER workers put before a message body.
var Delimiter = [][]byte{{}}
