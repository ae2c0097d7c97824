package dispatch

import (
	"context"
	"errors"
	"testing"

	"faas/protocol"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg   Config
		field string // "" when valid
	}{
		{Config{Mode: protocol.ModeLocal}, ""},
		{Config{Mode: protocol.ModeLocal, Port: 70000}, ""}, // local mode has no port
		{Config{Mode: protocol.ModePull, Port: 5555}, ""},
		{Config{Mode: protocol.ModePush, Port: 65535}, ""},
		{Config{}, "Mode"},
		{Config{Mode: "turbo"}, "Mode"},
		{Config{Mode: protocol.ModePull}, "Port"},
		{Config{Mode: protocol.ModePush, Port: 65536}, "Port"},
		{Config{Mode: protocol.ModePull, Port: -1}, "Port"},
	} {
		err := tc.cfg.Validate()
		if tc.field == "" {
			if err != nil {
				t.Errorf("%+v: Validate = %v, want nil", tc.cfg, err)
			}
			continue
		}
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field || !errors.Is(err, ErrBadConfig) {
			t.Errorf("%+v: Validate = %v, want a ConfigError on %s matching ErrBadConfig", tc.cfg, err, tc.field)
		}
	}
}

func TestRunValidates(t *testing.T) {
	// Run refuses a bad Config before touching the store (nil here).
	err := Run(context.Background(), nil, nil, Config{Mode: protocol.ModePush}, nil)
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != "Port" {
		t.Fatalf("Run = %v, want a ConfigError on Port", err)
	}
}
