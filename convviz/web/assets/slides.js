/* convviz slides: an offline player for a manim-slides presentation.
 *
 * Every slide video is a base64 <script type="application/octet-stream"> element; it
 * becomes a blob: URL the first time the slide (or its neighbour) is needed, so nothing
 * is ever requested from anywhere. Two <video> elements take turns: the shown one plays
 * the current slide while the one underneath (covered, not hidden) loads the next, and a
 * slide is put on top only once its first (or, going back, last) frame has been
 * presented, so stepping never flashes black or an earlier frame.
 *
 * Keys, as in manim-slides: Right / Space / PageDown / click / tap next (a slide still
 * playing first jumps to its end), Left / PageUp previous (shown at its last frame),
 * Home / End first / last, f fullscreen, n speaker notes.
 *
 * For tests: window.convvizSlides = {index, count, ready, playing} (index from 0; ready
 * once the screen shows what index says, at the frame it should) and
 * <body data-slide="N"> (N from 1, as the counter shows it).
 */
(function () {
  "use strict";

  var data = JSON.parse(document.getElementById("convviz-slides").textContent);
  var slides = data.slides;
  var videos = Array.prototype.slice.call(document.querySelectorAll("#stage video"));
  var counter = document.getElementById("counter");
  var notes = document.getElementById("notes");
  var urls = {};
  var state = { index: 0, count: slides.length, ready: false, playing: false };
  window.convvizSlides = state;

  var shown = videos[0]; // the element on screen
  var spare = videos[1]; // the element loading a neighbour
  var loaded = new Map(); // element -> slide index whose video it holds
  var generation = 0; // bumps on every move, so a stale swap never lands

  function url(i) {
    var id = slides[i].video;
    if (!urls[id]) {
      var element = document.getElementById(id);
      var text = atob(element.textContent.replace(/\s+/g, ""));
      var bytes = new Uint8Array(text.length);
      for (var k = 0; k < text.length; k++) bytes[k] = text.charCodeAt(k);
      urls[id] = URL.createObjectURL(new Blob([bytes], { type: element.dataset.mime }));
    }
    return urls[id];
  }

  function load(video, i) {
    if (loaded.get(video) === i) return;
    loaded.set(video, i);
    video.loop = slides[i].loop;
    video.defaultPlaybackRate = slides[i].rate;
    video.playbackRate = slides[i].rate;
    video.src = url(i);
    video.load();
    watch(video);
  }

  function once(video, event, then) {
    video.addEventListener(event, then, { once: true });
  }

  function whenReady(video, then) {
    if (video.readyState >= 2) then();
    else once(video, "loadeddata", then);
  }

  // What each element has put on screen: the media time of its last presented frame
  // (for its current source), from requestVideoFrameCallback. A slide is swapped in, or
  // called ready, only once the frame it should show has been presented, so it never
  // shows an earlier frame first.
  var presented = new Map();
  var tokens = new Map();
  var waiting = new Map();

  function watch(video) {
    var token = (tokens.get(video) || 0) + 1;
    tokens.set(video, token);
    presented.delete(video);
    if (!video.requestVideoFrameCallback) return;
    var arm = function () {
      video.requestVideoFrameCallback(function (now, meta) {
        if (tokens.get(video) !== token) return; // an older source's frame
        presented.set(video, meta.mediaTime);
        var waiters = waiting.get(video) || [];
        waiting.set(video, []);
        waiters.forEach(function (fn) { fn(); });
        arm();
      });
    };
    arm();
  }

  // Whether the frame last presented is the one at target (the last frame starts one
  // frame before the end: this allows for 7 fps and up).
  function shows(video, target) {
    var time = presented.get(video);
    return time !== undefined && time <= target + 0.01 && time >= target - 0.15;
  }

  function painted(video, target, then) {
    var done = false;
    var finish = function () {
      if (!done) { done = true; then(); }
    };
    if (!video.requestVideoFrameCallback) {
      requestAnimationFrame(function () { requestAnimationFrame(finish); });
      return;
    }
    var check = function () {
      if (done) return;
      if (shows(video, target)) finish();
      else (waiting.get(video) || waiting.set(video, []).get(video)).push(check);
    };
    setTimeout(finish, 300); // no frame comes (an unusual file): go on all the same
    check();
  }

  // Seek to the start (or, with end, the last frame), then call then once that frame is
  // on screen. The seek is always a real one: a video covered a while may have let its
  // frame go (Chromium shows black or its key frame when it comes back on top), and a
  // seek to where a paused video already is brings no new frame. So when it is there,
  // it goes to another time in the same frame (a tenth of a millisecond off).
  function seek(video, end, then) {
    var time = end ? video.duration : 0;
    if (!isFinite(time)) { then(); return; }
    if (Math.abs(video.currentTime - time) < 5e-5) time += end ? -1e-4 : 1e-4;
    presented.delete(video);
    once(video, "seeked", function () {
      whenReady(video, function () { painted(video, time, then); });
    });
    video.currentTime = time;
  }

  function play(video) {
    var promise = video.play();
    if (promise && promise.catch) promise.catch(function () { /* replaced or blocked */ });
  }

  function isPlaying(video) {
    return !video.paused && !video.ended;
  }

  function show() {
    var slide = slides[state.index];
    document.body.dataset.slide = String(state.index + 1);
    counter.textContent = (state.index + 1) + " / " + state.count;
    notes.textContent = slide.notes || "(no notes)";
  }

  function swapIn(video) {
    if (video !== shown) {
      spare = shown;
      shown = video;
      shown.classList.add("shown");
      spare.classList.remove("shown");
      spare.pause();
    }
  }

  function preload() {
    var next = state.index + 1;
    if (next < state.count) load(spare, next);
  }

  // Go to slide i; from its start (playing) or, with end, at its last frame.
  function go(i, end) {
    if (i < 0 || i >= state.count) return;
    var mine = ++generation;
    state.index = i;
    state.ready = false;
    show();
    // The slide on screen is restarted (or sought to its end) in place; any other one
    // is loaded into the spare element while the screen keeps its last frame.
    var target = loaded.get(shown) === i ? shown : spare;
    if (target !== shown) load(target, i);
    whenReady(target, function () {
      if (mine !== generation) return;
      target.pause();
      seek(target, end, function () {
        if (mine !== generation) return;
        swapIn(target);
        state.ready = true;
        if (!end) play(target);
        state.playing = isPlaying(target);
        preload();
      });
    });
  }

  function next() {
    var slide = slides[state.index];
    if (state.ready && isPlaying(shown) && !slide.loop && !slide.autoNext) {
      // A presenter's "next" first finishes the animation on screen.
      var mine = ++generation;
      state.ready = false;
      shown.pause();
      seek(shown, true, function () {
        if (mine === generation) state.ready = true;
      });
      return;
    }
    go(state.index + 1, false);
  }

  function previous() {
    go(state.index - 1, true);
  }

  videos.forEach(function (video) {
    video.addEventListener("ended", function () {
      if (video !== shown || !state.ready) return;
      state.playing = false;
      if (slides[state.index].autoNext && state.index + 1 < state.count) {
        go(state.index + 1, false);
      }
    });
    video.addEventListener("playing", function () {
      if (video === shown) state.playing = true;
    });
    video.addEventListener("pause", function () {
      if (video === shown) state.playing = false;
    });
    video.addEventListener("error", function () {
      var i = loaded.get(video);
      console.error("convviz slides: slide " + (i + 1) + " cannot be played");
    });
  });

  function fullscreen() {
    if (document.fullscreenElement) {
      if (document.exitFullscreen) document.exitFullscreen().catch(function () {});
    } else if (document.documentElement.requestFullscreen) {
      document.documentElement.requestFullscreen().catch(function () {});
    }
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.altKey || event.metaKey) return;
    var handled = true;
    switch (event.key) {
      case "ArrowRight": case " ": case "Spacebar": case "PageDown": next(); break;
      case "ArrowLeft": case "PageUp": previous(); break;
      case "Home": go(0, false); break;
      case "End": go(state.count - 1, false); break;
      case "f": case "F": fullscreen(); break;
      case "n": case "N": notes.hidden = !notes.hidden; break;
      default: handled = false;
    }
    if (handled) event.preventDefault();
  });

  document.addEventListener("click", function (event) {
    if (event.button !== 0 || notes.contains(event.target)) return;
    next();
  });

  go(0, false);
})();
