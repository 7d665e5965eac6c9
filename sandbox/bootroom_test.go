package sandbox

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TestBootRoom: boots are admitted while the fleet's memory plus the room
// of every boot under way fits the budget; past it a boot waits, until a
// boot under way is released or the fleet's memory falls, and fails with
// ErrCapacity at its context's end (no root: the fleet's memory is a
// counter).
func TestBootRoom(t *testing.T) {
	var used atomic.Uint64
	used.Store(60 << 20)
	r := &bootRoom{budget: 100 << 20, used: func() (uint64, error) { return used.Load(), nil }}
	admit := func(within time.Duration) (func(), error) {
		ctx, cancel := context.WithTimeout(context.Background(), within)
		defer cancel()
		return r.await(ctx)
	}

	rel1, err := admit(time.Second) // 60 + 16 <= 100
	if err != nil {
		t.Fatalf("first boot: %v", err)
	}
	rel2, err := admit(time.Second) // 60 + 2 x 16 <= 100
	if err != nil {
		t.Fatalf("second boot: %v", err)
	}
	if _, err := admit(3 * roomPollInterval); !errors.Is(err, ErrCapacity) { // 60 + 3 x 16 > 100
		t.Fatalf("third boot: %v, want ErrCapacity", err)
	}

	// A waiting boot gets in when one under way ends...
	got := make(chan error, 1)
	go func() {
		rel, err := admit(10 * time.Second)
		if err == nil {
			rel() // its boot ended
		}
		got <- err
	}()
	rel1()
	if err := <-got; err != nil {
		t.Fatalf("boot waiting for a release: %v", err)
	}

	// ... or when the fleet's memory falls (the kernel merged pages).
	rel1b, err := admit(time.Second) // the one released above: 60 + 2 x 16
	if err != nil {
		t.Fatalf("boot after the waiter's release: %v", err)
	}
	go func() {
		rel, err := admit(10 * time.Second)
		if err == nil {
			rel() // its boot ended
		}
		got <- err
	}()
	used.Store(20 << 20)
	if err := <-got; err != nil {
		t.Fatalf("boot waiting for the fleet's memory to fall: %v", err)
	}
	rel1b()
	rel2()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.booting != 0 {
		t.Fatalf("%d boots still counted after every release", r.booting)
	}

}

// TestBootRoomUnreadableFleet: a fleet whose memory cannot be read admits
// every boot at once.
func TestBootRoomUnreadableFleet(t *testing.T) {
	r := &bootRoom{budget: 100 << 20, used: func() (uint64, error) { return 0, errors.New("no memory controller") }}
	for range 10 {
		if _, err := r.await(context.Background()); err != nil {
			t.Fatalf("unreadable fleet: %v", err)
		}
	}
}
