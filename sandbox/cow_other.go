//go:build !linux

package sandbox

import "errors"

// cowImage needs memfd_create (Linux): elsewhere a snapshot's memory is in data segments.
type cowImage struct{ size uint64 }

func newCowImage(mem []byte) (*cowImage, error) {
	return nil, errors.New("copy-on-write snapshots need Linux")
}

func (c *cowImage) take(n uint64) ([]byte, error) { return nil, errors.New("unsupported") }
func (c *cowImage) give(r []byte, used uint64)    {}
func (c *cowImage) readInto(b []byte) error       { return errors.New("unsupported") }
func (c *cowImage) close()                        {}
