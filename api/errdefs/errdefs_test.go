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
