// Stop in the Rank button's place while a ranking is under way (arena.css: #rank-controls gets
// the class "ranking"): from the first sign of it on the status line, Gradio's progress bar or
// its place in the queue ("queue: 2/4": on a busy Space minutes, and a press reaches the ranking
// there too, RankingsUnderWay), until the line's progress is hidden again. Not from the spinner
// of the steps that draw the results after it. Held in between: the bar is redrawn with each
// report, and the buttons flickered, taking the keyboard's focus back and forth with them
// (static/focus.js).
() => {
  let ranking = false;
  const mark = () => {
    const controls = document.getElementById("rank-controls");
    const tracker = controls?.querySelector('#rank-status [data-testid="status-tracker"]');
    const showing = !!tracker && !tracker.classList.contains("hide");
    const started = showing && (!!tracker.querySelector(".progress-level")
      || /^\s*queue:/.test(tracker.querySelector(".progress-text")?.textContent || ""));
    ranking = showing && (ranking || started);
    if (controls && controls.classList.contains("ranking") !== ranking) controls.classList.toggle("ranking", ranking);
  };
  new MutationObserver(mark).observe(document.body, { subtree: true, childList: true, characterData: true,
    attributes: true, attributeFilter: ["class"] });
}
