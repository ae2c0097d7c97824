package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// The decoders must never panic, must refuse with a 400 (never a 500) whatever the body,
// and what they accept must agree with encoding/json's reading of the same body.

var decoderSeeds = []string{
	``,
	`{}`,
	`null`,
	`[]`,
	`"x"`,
	`{"name":"double","payload":"AGFzbQEAAAA="}`,
	`{"name":"double","payload":"AGFzbQEAAAA=","limits":{"timeout_ms":100,"memory_mb":1}}`,
	`{"name":"x","payload":null}`,
	`{"name":"x","payload":""}`,
	`{"name":"x","payload":"\/w=="}`,
	`{"name":"x","payload":"AGFzbQ"}`,
	`{"name":"x","payload":12}`,
	`{"name":"x","payload":"x","limits":null}`,
	`{"name":"x","payload":"x","limits":{"cpus":1}}`,
	`{"name":"x","payload":"","extra":1}`,
	`{"function_id":"9e07cab5-1989-4676-9d51-bf50f93ce589","payload":"aGVsbG8="}`,
	`{"function_id":"9e07cab5-1989-4676-9d51-bf50f93ce589","payload":"aGVsbG8="} trailing`,
	`{"function_id":1,"payload":"aGVsbG8="}`,
	`{"function_id":"a","payload":"\u0041\u0041=="}`,
	`{"function_id":"a","payload":"AA==\n"}`,
	`{"function_id":"a","payloads":["", null, "AA=="]}`,
	`{"task_ids":["a","b"],"wait":"2s"}`,
	"{\"name\":\"\xff\",\"payload\":\"\"}",
}

func FuzzDecodeRegister(f *testing.F) {
	for _, s := range decoderSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req registerRequest
		err := decodeJSON(bytes.NewReader(body), &req)
		if err == nil {
			_, err = req.Payload.field("payload")
		}
		checkDecoded(t, body, err, req.Payload)
	})
}

func FuzzDecodeExecute(f *testing.F) {
	for _, s := range decoderSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req executeRequest
		err := decodeJSON(bytes.NewReader(body), &req)
		if err == nil {
			_, err = req.Payload.field("payload")
		}
		checkDecoded(t, body, err, req.Payload)
		if err == nil {
			var ref struct {
				FunctionID string `json:"function_id"`
			}
			if json.Unmarshal(body, &ref) != nil || ref.FunctionID != req.FunctionID {
				t.Fatalf("function_id %q, encoding/json reads %q", req.FunctionID, ref.FunctionID)
			}
		}
	})
}

func FuzzDecodeBatch(f *testing.F) {
	for _, s := range decoderSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req batchRequest
		err := decodeJSON(bytes.NewReader(body), &req)
		if err != nil {
			checkDecoded(t, body, err, b64{})
			return
		}
		for _, p := range req.Payloads {
			if _, err := p.field("payloads[i]"); err != nil {
				checkDecoded(t, body, err, p)
			}
		}
	})
}

// checkDecoded checks an outcome of decoding body: an error is a 400; a payload accepted
// is what encoding/json and base64 make of the same text.
func checkDecoded(t *testing.T, body []byte, err error, p b64) {
	t.Helper()
	if err != nil {
		status, code, msg := classify(err)
		if status != http.StatusBadRequest || code != codeBadRequest || msg == "" {
			t.Fatalf("body %q: error %v classified as %d %s %q, want 400 bad_request", body, err, status, code, msg)
		}
		return
	}
	var ref struct {
		Payload *string `json:"payload"`
	}
	if json.Unmarshal(body, &ref) != nil || ref.Payload == nil {
		t.Fatalf("body %q accepted, but encoding/json finds no payload string", body)
	}
	want, derr := base64.StdEncoding.DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(*ref.Payload))
	if derr != nil || !bytes.Equal(want, p.data) {
		t.Fatalf("body %q: payload %q, want %q (%v)", body, p.data, want, derr)
	}
}
