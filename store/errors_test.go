package store

import (
	"context"
	"errors"
	"testing"

	"github.com/webtaskd/webtaskd/api/errdefs"
)

// TestNotFoundSaysWhat: every not-found of the store is an
// errdefs.ErrNotFound whose caller-facing message says what is missing,
// so the API sends it as is.
func TestNotFoundSaysWhat(t *testing.T) { bothDialects(t, testNotFoundSaysWhat) }

func testNotFoundSaysWhat(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	_, errWebtask := s.GetWebtask(ctx, "c", "w")
	_, errData := s.GetData(ctx, "c", "w")
	_, errJob := s.GetCronJob(ctx, "c", "j")
	_, errPutJob := s.PutCronJob(ctx, &CronJob{Container: "c", Name: "w", Schedule: "* * * * *", TZ: "UTC", State: CronActive})
	errLimits := s.DeleteLimits(ctx, "c")
	_, errCode := s.GetCode(ctx, CodeHash("nothing"))
	for _, tc := range []struct {
		err      error
		sentinel error
		msg      string
	}{
		{errWebtask, ErrWebtaskNotFound, "webtask not found"},
		{errData, ErrWebtaskNotFound, "webtask not found"},
		{errJob, ErrCronJobNotFound, "no cron job `j`"},
		{errPutJob, ErrWebtaskNotFound, "no webtask `w` in container `c` to schedule"},
		{errLimits, ErrLimitsNotFound, "container c has no limit overrides"},
		{errCode, ErrCodeNotFound, "the code named by the url claim is not stored"},
	} {
		var e *errdefs.Error
		if !errors.Is(tc.err, tc.sentinel) || !errors.Is(tc.err, errdefs.ErrNotFound) || !errors.As(tc.err, &e) || e.Error() != tc.msg {
			t.Errorf("%v: want %v with message %q, got %v", tc.err, tc.sentinel, tc.msg, e)
		}
	}
}
