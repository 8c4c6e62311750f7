package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pyrite-dev/pyrite/internal/config"
)

const eventsUsage = `
Reads every aggregate's events in one stable order (the seed's readAll)
through the projector's GET /v1/events, page by page from --from (a cursor
an earlier run printed; empty: the beginning), and prints one JSON object per
event. It stops when caught up, or after --limit events, and prints the
cursor to go on from on stderr as "nextCursor <cursor>": paging with it
never skips or repeats an event.

Examples:
  pyrite events --types 'WorkEffort:*' --limit 20
  pyrite events --from "$CURSOR"

Exit code 0 when done, 1 when the projector cannot be read, 2 on usage errors.`

func runEvents(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newOpsFlagSet("pyrite events", "pyrite events [--from CURSOR] [flags]", eventsUsage, stderr)
	projector := fs.String("projector", config.Env("PYRITE_PROJECTOR", "http://"+config.DefaultProjector),
		"the projector's base URL, which serves GET /v1/events (env PYRITE_PROJECTOR)")
	from := fs.String("from", "", "the cursor to start after (empty: the first event)")
	types := fs.String("types", "", "comma-separated event types or patterns to print, e.g. 'WorkEffort:*,*:Completed' (empty: all)")
	limit := fs.Int("limit", 0, "stop after this many events (0: when caught up)")
	output := fs.String("output", "json", "output format: json, one object per line (the only format)")
	timeout := fs.Duration("timeout", 30*time.Second, "give up when the projector has not answered a page within this time")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var errs []error
	base := strings.TrimRight(*projector, "/")
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("--projector: %q is not an http(s) URL", *projector))
	}
	if *limit < 0 {
		errs = append(errs, fmt.Errorf("--limit: %d is negative", *limit))
	}
	if *output != "json" {
		errs = append(errs, fmt.Errorf("--output: events prints json only, not %q", *output))
	}
	if *timeout <= 0 {
		errs = append(errs, fmt.Errorf("--timeout: %v is not positive", *timeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	hc := &http.Client{Timeout: *timeout}
	cursor, printed := *from, 0
	defer func() { fmt.Fprintf(stderr, "nextCursor %s\n", cursor) }()
	for {
		pageSize := 500
		if *limit > 0 {
			pageSize = min(pageSize, *limit-printed)
		}
		q := url.Values{"from": {cursor}, "limit": {strconv.Itoa(pageSize)}}
		if *types != "" {
			q.Set("types", *types)
		}
		page, err := eventsPage(ctx, hc, base+"/v1/events?"+q.Encode())
		if err != nil {
			return err
		}
		for _, e := range page.Events {
			if _, err := fmt.Fprintf(stdout, "%s\n", e); err != nil {
				return err
			}
		}
		printed += len(page.Events)
		cursor = page.NextCursor
		if len(page.Events) == 0 || (*limit > 0 && printed >= *limit) {
			return nil
		}
	}
}

type eventsPageBody struct {
	Events     []json.RawMessage `json:"events"`
	NextCursor string            `json:"nextCursor"`
}

func eventsPage(ctx context.Context, hc *http.Client, u string) (*eventsPageBody, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var p struct {
			Detail string `json:"detail"`
		}
		_ = json.Unmarshal(b, &p)
		return nil, fmt.Errorf("GET /v1/events: %s: %s", resp.Status, p.Detail)
	}
	var page eventsPageBody
	if err := json.Unmarshal(b, &page); err != nil || page.NextCursor == "" {
		return nil, fmt.Errorf("GET /v1/events: not a readAll page: %.200s", b)
	}
	return &page, nil
}
