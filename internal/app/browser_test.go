package app

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"clicks/internal/clicks"
	"clicks/internal/clickstest"

	"github.com/chromedp/chromedp"
)

// findChromium returns the path of a Chromium or Chrome binary. Without
// one the browser test skips, except in CI (CI=true), where .ci/run
// installs Debian's chromium and a missing browser is a failure.
func findChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium found, and CI=true: install it (apt-get install chromium) or set CHROMIUM")
	}
	t.Skip("no chromium found: install it (apt-get install chromium) or set CHROMIUM to run the browser test")
	return ""
}

// testOutputDir is where tests leave files for people to look at (CI
// keeps it): TEST_OUTPUT_DIR, or test-output in the repository.
func testOutputDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("TEST_OUTPUT_DIR")
	if dir == "" {
		dir = "test-output"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("create test output directory: %v", err)
	}
	return dir
}

// newBrowser starts headless Chromium with the flags that keep it off the
// network, in a fresh profile, and returns a tab's context.
func newBrowser(t *testing.T, path string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1280, 1000),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancelTab()
		cancelAlloc()
	})
	return ctx
}

// digits reads a number as the page formats it ("1,234").
func digits(s string) int {
	n, err := strconv.Atoi(strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s))
	if err != nil {
		return -1
	}
	return n
}

// pollText waits until the text of the first element that matches the
// CSS selector sel satisfies ok, and returns it.
func pollText(t *testing.T, ctx context.Context, sel string, within time.Duration, ok func(string) bool) string {
	t.Helper()
	expr := fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel)
	var text string
	clickstest.WaitFor(t, within, "the text of "+sel+" to become what the test waits for", func() (bool, string) {
		var err error
		if text, err = chromedp.Run(ctx, chromedp.Evaluate[string](expr)); err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return ok(text), fmt.Sprintf("%q", text)
	})
	return text
}

// The live page in a real browser against the running program: it shows
// user-3's count, the count rises without a reload, the search finds a
// user, and it fits a phone's width. Screenshots go to test-output/.
func TestBrowserLivePage(t *testing.T) {
	path := findChromium(t)
	out := testOutputDir(t)
	in := clickstest.StartInProcess(t, Run, nil, "-data", t.TempDir(), "-interval", "20ms", "-users", "5")
	ctx := newBrowser(t, path)

	// Script errors and refused loads (the page's CSP) fail the test.
	var (
		mu       sync.Mutex
		problems []string
	)
	consoleCtx, stopConsole := context.WithCancel(ctx)
	messages := chromedp.Console(consoleCtx)
	consoleDone := make(chan struct{})
	go func() {
		defer close(consoleDone)
		for m, err := range messages {
			if err != nil {
				return
			}
			// The 404 of the search for a user without clicks is the
			// answer the test asks for.
			expected := strings.HasSuffix(m.URL, "/nobody-at-all")
			if (m.Type == chromedp.ConsoleException || m.Type == chromedp.ConsoleError) && !expected {
				mu.Lock()
				problems = append(problems, m.String())
				mu.Unlock()
			}
		}
	}()
	if err := chromedp.Do(ctx, chromedp.Navigate(in.URL()+"/")); err != nil {
		t.Fatalf("open the page: %v", err)
	}
	// A mark on the window: if the page reloaded, it would be gone.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.notReloaded = true`)); err != nil {
		t.Fatal(err)
	}

	cell := `#rows tr[data-user="user-3"] td.clicks`
	first := digits(pollText(t, ctx, cell, 30*time.Second, func(s string) bool { return digits(s) > 0 }))
	pollText(t, ctx, cell, 30*time.Second, func(s string) bool { return digits(s) > first })
	pollText(t, ctx, "#status-text", 30*time.Second, func(s string) bool { return s == "Live · caught up" })
	pollText(t, ctx, "#total", 10*time.Second, func(s string) bool { return digits(s) > first })
	if notReloaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.notReloaded === true`)); err != nil || !notReloaded {
		t.Fatalf("the page reloaded to show the new count (err %v)", err)
	}
	// A click another client wrote outside its user's partition shows as
	// forwarded.
	w := writers{t: t, brokers: in.Brokers}
	w.franzSend([]string{"user-4"}, (clicks.KeyPartition("user-4", clicks.DefaultPartitions)+1)%clicks.DefaultPartitions)
	pollText(t, ctx, "#forwarded", 30*time.Second, func(s string) bool { return digits(s) >= 1 })
	if bars, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#chart li.bar").length`)); err != nil || bars != 5 {
		t.Errorf("the chart has %d bars (err %v), want one per user: 5", bars, err)
	}

	// The search looks a user up; its count agrees with GET /{user}.
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#q"), "user-2"),
		chromedp.Click(chromedp.CSS(`#find button[type="submit"]`)),
	); err != nil {
		t.Fatalf("search: %v", err)
	}
	found := pollText(t, ctx, "#result", 10*time.Second, func(s string) bool { return strings.HasPrefix(s, "user-2: ") })
	if n, api := digits(strings.TrimPrefix(found, "user-2: ")), in.Clicks("user-2"); n <= 0 || n > api {
		t.Errorf("search shows %q; GET /user-2 says %d afterwards", found, api)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#q").value = ""`)); err != nil {
		t.Fatalf("clear the search: %v", err)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#q"), "nobody-at-all"),
		chromedp.Click(chromedp.CSS(`#find button[type="submit"]`)),
	); err != nil {
		t.Fatalf("search: %v", err)
	}
	pollText(t, ctx, "#result", 10*time.Second, func(s string) bool { return s == "No clicks for nobody-at-all yet." })

	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(filepath.Join(out, "live-page-desktop.png"), shot, 0o644); err != nil {
		t.Fatal(err)
	}

	// At a phone's width nothing runs off the side.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844)); err != nil {
		t.Fatalf("phone width: %v", err)
	}
	overflow, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth - document.documentElement.clientWidth`))
	if err != nil {
		t.Fatal(err)
	}
	if overflow > 0 {
		t.Errorf("at 390 px the page is %d px wider than the screen", overflow)
	}
	if shot, err = chromedp.Run(ctx, chromedp.FullScreenshot(100)); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(filepath.Join(out, "live-page-phone.png"), shot, 0o644); err != nil {
		t.Fatal(err)
	}

	stopConsole()
	<-consoleDone
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(problems, "\n"))
	}
	t.Logf("screenshots in %s", out)
}
