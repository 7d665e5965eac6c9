package errdefs

import (
	"errors"
	"fmt"
	"testing"
)

func TestKindSurvivesWrapping(t *testing.T) {
	base := New(ErrNotFound, "webtask `x` not found")
	wrapped := fmt.Errorf("loading: %w", base)
	if !IsNotFound(wrapped) || Kind(wrapped) != ErrNotFound {
		t.Fatalf("kind lost through wrapping: %v", Kind(wrapped))
	}
	var e *Error
	if !errors.As(wrapped, &e) || e.Error() != "webtask `x` not found" {
		t.Fatalf("message: %v", e)
	}
	if Kind(errors.New("plain")) != nil {
		t.Fatal("a plain error has no kind")
	}
	if got := Errorf(ErrInvalid, "bad %q", "n").Error(); got != `bad "n"` {
		t.Fatalf("Errorf: %s", got)
	}
}

// TestSentinelAsKind: a package's sentinel (itself an *Error) may be the
// kind of New/Errorf; errors.Is matches the sentinel and the kind, and the
// caller-facing message is the outermost *Error's.
func TestSentinelAsKind(t *testing.T) {
	sentinel := New(ErrNotFound, "cron job not found")
	err := fmt.Errorf("store: cron job c/j: %w", Errorf(sentinel, "no cron job `%s`", "j"))
	if !errors.Is(err, sentinel) || !errors.Is(err, ErrNotFound) || Kind(err) != ErrNotFound {
		t.Fatalf("chain lost: Is(sentinel)=%v Kind=%v", errors.Is(err, sentinel), Kind(err))
	}
	var e *Error
	if !errors.As(err, &e) || e.Error() != "no cron job `j`" {
		t.Fatalf("message %v", e)
	}
	if errors.Is(err, ErrInvalid) {
		t.Fatal("an error of one kind matched another")
	}
}
