package protocol

import "fmt"

// Mode is how a dispatcher hands out tasks, and which protocol a remote worker speaks.
type Mode string

const (
	// ModeLocal runs tasks in the dispatcher's own process; it never appears on the wire.
	ModeLocal Mode = "local"
	// ModePull workers ask for work (REQUEST_TASK) when a slot is free.
	ModePull Mode = "pull"
	// ModePush workers register their capacity and receive NEW_TASK, least-loaded first.
	ModePush Mode = "push"
)

// Modes lists the dispatcher's modes; RemoteModes those a worker may speak.
var (
	Modes       = []string{string(ModeLocal), string(ModePull), string(ModePush)}
	RemoteModes = []string{string(ModePull), string(ModePush)}
)

// ParseMode reads a dispatcher mode (local, pull or push).
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeLocal, ModePull, ModePush:
		return m, nil
	}
	return "", fmt.Errorf("unknown mode %q: want local, pull or push", s)
}

// ParseRemoteMode reads a worker's mode (pull or push).
func ParseRemoteMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModePull, ModePush:
		return m, nil
	}
	return "", fmt.Errorf("unknown worker mode %q: want pull or push", s)
}

// Remote reports whether tasks leave the dispatcher's process (pull or push).
func (m Mode) Remote() bool { return m == ModePull || m == ModePush }
