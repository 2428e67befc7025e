//go:build !linux

package tracker

import (
	"context"
	"errors"
	"sync"
)

// poller is only implemented on Linux; elsewhere every socket keeps a
// parked reader goroutine.
type poller struct{}

func newPoller() (*poller, error) { return nil, errors.New("no poller on this platform") }

func (p *poller) add(*conn) error                      { return errors.New("no poller") }
func (p *poller) rearm(*conn) error                    { return errors.New("no poller") }
func (p *poller) remove(*conn)                         {}
func (p *poller) count() int                           { return 0 }
func (p *poller) run(context.Context, *sync.WaitGroup) {}

const pollerAvailable = false
