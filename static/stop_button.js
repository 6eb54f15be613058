// Stop in the Rank button's place while a ranking waits in Gradio's queue for a ranking slot
// ("queue: 2/4" on the status line; arena.css shows it while the progress bar runs). On a busy
// Space that wait is minutes, and a press reaches the ranking there too (RankingsUnderWay).
// CSS alone cannot tell that line from the spinner of the steps that draw the results.
() => {
  const mark = () => {
    const controls = document.getElementById("rank-controls");
    const tracker = controls?.querySelector('#rank-status [data-testid="status-tracker"]');
    const queued = !!tracker && !tracker.classList.contains("hide")
      && /^\s*queue:/.test(tracker.querySelector(".progress-text")?.textContent || "");
    if (controls && controls.classList.contains("rank-queued") !== queued) controls.classList.toggle("rank-queued", queued);
  };
  new MutationObserver(mark).observe(document.body, { subtree: true, childList: true, characterData: true,
    attributes: true, attributeFilter: ["class"] });
}
