// convviz page player: the clip, its steps as chapters, and every cell clickable.
// Everything it needs is in this file's page: the data (#convviz-data), the video
// (#convviz-video, base64) and the formulas (SVG inside the data). No request leaves.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("convviz-data").textContent);
  var video = document.getElementById("video");
  var regions = document.getElementById("regions");
  var hover = document.getElementById("hover");
  var seek = document.getElementById("seek");
  var marks = document.getElementById("marks");
  var playButton = document.getElementById("play");
  var timeText = document.getElementById("time");
  var nowText = document.getElementById("now");
  var chapters = document.getElementById("chapters");
  var strip = document.getElementById("strip");
  var state = { ready: false, step: -1, layout: -1, selected: null, phase: -1 };
  window.convvizPage = state;

  // --- the video, from base64 to a blob: URL (seekable, nothing fetched)
  var packed = document.getElementById("convviz-video");
  var raw = atob(packed.textContent.trim());
  var bytes = new Uint8Array(raw.length);
  for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  video.src = URL.createObjectURL(new Blob([bytes], { type: packed.dataset.mime }));
  packed.textContent = "";
  video.addEventListener("loadedmetadata", function () {
    seek.max = String(video.duration || data.duration);
    state.ready = true;
    update();
  });

  function clock(t) {
    var s = Math.max(0, Math.floor(t));
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  // --- steps: which one is on screen, moving between them
  function stepAt(t) {
    var found = -1;
    for (var n = 0; n < data.steps.length; n++) {
      if (data.steps[n].start <= t + 1e-6) found = n; else break;
    }
    return found;
  }
  function holdTime(n) {
    var h = data.steps[n].hold;
    return h[0] + 0.4 * (h[1] - h[0]);
  }
  function goToStep(n) {
    if (n < 0 || n >= data.steps.length) return;
    video.pause();
    video.currentTime = holdTime(n);
    update();
  }
  function nextStep(direction) {
    var t = video.currentTime;
    var n = stepAt(t);
    var target = n;
    if (direction > 0) {
      // during a step's transition, "next" is that step; otherwise the one after
      target = (n >= 0 && t < data.steps[n].hold[0] - 1e-3) ? n : n + 1;
    } else {
      target = (n >= 0 && t > holdTime(n) + 0.05) ? n : n - 1;
    }
    goToStep(Math.max(0, Math.min(data.steps.length - 1, target)));
  }

  // --- cells over the video
  function layoutAt(t) {
    for (var k = 0; k < data.layouts.length; k++) {
      var l = data.layouts[k];
      if (l.start - 1e-6 <= t && t <= l.end + 1e-6) return k;
    }
    return -1;
  }
  function drawRegions(k) {
    regions.textContent = "";
    if (k < 0) return;
    data.layouts[k].boxes.forEach(function (b) {
      var cell = data.cells[b[0]];
      var r = document.createElement("button");
      r.type = "button";
      r.className = "cell";
      r.dataset.cell = b[0];
      if (b[5] !== null && b[5] !== undefined) r.dataset.step = String(b[5]);
      r.style.left = (100 * b[1] / data.width) + "%";
      r.style.top = (100 * b[2] / data.height) + "%";
      r.style.width = (100 * (b[3] - b[1]) / data.width) + "%";
      r.style.height = (100 * (b[4] - b[2]) / data.height) + "%";
      r.setAttribute("aria-label", cell ? cell.name : b[0]);
      r.addEventListener("mouseenter", function () { showHover(r, cell); });
      r.addEventListener("focus", function () { showHover(r, cell); });
      r.addEventListener("mouseleave", function () { hover.hidden = true; });
      r.addEventListener("blur", function () { hover.hidden = true; });
      r.addEventListener("click", function (event) {
        event.stopPropagation();
        select(b[0], r.dataset.step === undefined ? null : Number(r.dataset.step));
      });
      regions.appendChild(r);
    });
  }
  function showHover(region, cell) {
    hover.textContent = cell ? cell.name : region.dataset.cell;
    hover.hidden = false;
    // beside the cell, never over it: above it, or below it where there is no room above;
    // centred on it, kept inside the frame
    var frame = region.parentNode.getBoundingClientRect();
    var box = region.getBoundingClientRect();
    var half = hover.offsetWidth / 2;
    var left = box.left - frame.left + box.width / 2;
    var top = box.top - frame.top;
    var below = top < hover.offsetHeight + 2;
    hover.style.left = Math.max(half, Math.min(frame.width - half, left)) + "px";
    hover.style.top = (below ? box.bottom - frame.top : top) + "px";
    hover.classList.toggle("below", below);
  }

  // --- the panel: a cell's name, formula and numbers
  function select(id, step) {
    var cell = data.cells[id];
    if (!cell) return;
    state.selected = id;
    document.getElementById("cell-name").textContent = cell.name;
    var formula = document.getElementById("cell-formula");
    formula.innerHTML = cell.formula >= 0 ? data.formulas[cell.formula] : "";
    formula.dataset.cell = id;
    formula.dataset.tex = cell.tex;
    formula.setAttribute("aria-label", cell.tex);
    var numbers = document.getElementById("cell-numbers");
    numbers.textContent = "";
    [["value", cell.value], ["gradient dL/d" + cell.name, cell.grad]].forEach(function (pair) {
      if (pair[1] === undefined) return;
      var dt = document.createElement("dt");
      dt.textContent = pair[0];
      var dd = document.createElement("dd");
      dd.textContent = pair[1];
      numbers.appendChild(dt);
      numbers.appendChild(dd);
    });
    var chosen = step !== null && step !== undefined ? step : cell.step;
    if (chosen !== undefined && chosen !== null) goToStep(chosen);
    else update();
  }

  // --- chapters, marks and (for networks) the layer strip
  function chapterItem(text, time, n) {
    var li = document.createElement("li");
    var b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    b.addEventListener("click", function () {
      if (n !== null) goToStep(n);
      else { video.pause(); video.currentTime = time; update(); }
    });
    li.appendChild(b);
    li.dataset.step = n === null ? "" : String(n);
    return li;
  }
  function buildChapters() {
    if (data.kind === "network") {
      data.phases.forEach(function (p, k) {
        var group = document.createElement("li");
        group.className = "phase";
        group.dataset.phase = String(k);
        var head = document.createElement("button");
        head.type = "button";
        head.className = "phase-title";
        head.textContent = p.title;
        head.addEventListener("click", function () { goToPhase(k); });
        group.appendChild(head);
        var inner = document.createElement("ol");
        var sweep = 0, firstSweep = null;
        data.steps.forEach(function (s, n) {
          if (s.phase !== k) return;
          if (s.sweep) { sweep++; if (firstSweep === null) firstSweep = n; return; }
          inner.appendChild(chapterItem(s.label, s.start, n));
        });
        if (sweep) inner.appendChild(chapterItem("… " + sweep + " more cells (sweep)",
                                                 null, firstSweep));
        group.appendChild(inner);
        chapters.appendChild(group);
      });
    } else {
      data.steps.forEach(function (s, n) {
        chapters.appendChild(chapterItem(s.label, s.start, n));
      });
    }
    data.steps.forEach(function (s, n) {
      if (s.sweep) return;
      var m = document.createElement("span");
      m.className = "mark";
      m.style.left = (100 * s.start / data.duration) + "%";
      marks.appendChild(m);
    });
    data.phases.forEach(function (p) {
      var m = document.createElement("span");
      m.className = "mark phase-mark";
      m.style.left = (100 * p.start / data.duration) + "%";
      marks.appendChild(m);
    });
  }
  function goToPhase(k) {
    var p = data.phases[k];
    if (p.step !== null && p.step !== undefined) goToStep(p.step);
    else { video.pause(); video.currentTime = p.start; update(); }
  }
  function buildStrip() {
    if (!strip) return;
    data.layers.forEach(function (layer) {
      var box = document.createElement("div");
      box.className = "layer";
      box.dataset.layer = String(layer.index);
      var name = document.createElement("span");
      name.className = "layer-name";
      name.textContent = layer.index + " " + layer.type;
      box.appendChild(name);
      [["forward", "forward →"], ["backward", "← backward"]].forEach(function (pair) {
        var k = layer[pair[0]];
        if (k === null || k === undefined) return;
        var b = document.createElement("button");
        b.type = "button";
        b.className = pair[0];
        b.dataset.phase = String(k);
        b.dataset.layer = String(layer.index);
        b.textContent = pair[1];
        b.title = data.phases[k].title;
        b.addEventListener("click", function () { goToPhase(k); });
        box.appendChild(b);
      });
      strip.appendChild(box);
    });
  }

  // --- keeping everything in step with the video
  function update() {
    var t = video.currentTime;
    seek.value = String(t);
    timeText.textContent = clock(t) + " / " + clock(data.duration);
    playButton.innerHTML = video.paused ? "&#9654;" : "&#10074;&#10074;";
    playButton.setAttribute("aria-label", video.paused ? "Play" : "Pause");
    var k = layoutAt(t);
    if (k !== state.layout) { state.layout = k; drawRegions(k); }
    var n = stepAt(t);
    state.step = n;
    var phase = n >= 0 && data.steps[n].phase !== null ? data.steps[n].phase : -1;
    if (data.kind === "network") {
      for (var q = 0; q < data.phases.length; q++) {
        if (data.phases[q].start <= t + 1e-6) phase = q;
      }
    }
    state.phase = phase;
    var label = "";
    if (n >= 0) {
      var s = data.steps[n];
      label = (phase >= 0 ? data.phases[phase].title + " · " : "") + "step " + (n + 1) +
        " of " + data.steps.length + ": " + s.label;
    } else {
      label = data.subtitle || data.title;
    }
    nowText.textContent = label;
    Array.prototype.forEach.call(regions.children, function (r) {
      r.classList.toggle("current", n >= 0 && r.dataset.cell === data.steps[n].cell);
      r.classList.toggle("selected", r.dataset.cell === state.selected);
    });
    Array.prototype.forEach.call(chapters.querySelectorAll("li[data-step]"), function (li) {
      var now = li.dataset.step === String(n);
      if (now && !li.classList.contains("current")) keepInView(li);
      li.classList.toggle("current", now);
    });
    Array.prototype.forEach.call(chapters.querySelectorAll("li.phase"), function (li) {
      li.classList.toggle("current", li.dataset.phase === String(phase));
    });
    if (strip) {
      Array.prototype.forEach.call(strip.querySelectorAll("button[data-phase]"), function (b) {
        // the button of the current phase's layer and direction (db and da included)
        var p = phase >= 0 ? data.phases[phase] : null;
        var now = p !== null && b.dataset.layer === String(p.layer) &&
          b.classList.contains(p.phase);
        if (now && !b.classList.contains("current")) {
          // a strip that scrolls sideways (phones) shows the current layer
          var box = b.parentNode;
          var left = box.offsetLeft - strip.offsetLeft;
          if (left < strip.scrollLeft || left + box.offsetWidth >
              strip.scrollLeft + strip.clientWidth) strip.scrollLeft = left - 8;
        }
        b.classList.toggle("current", now);
      });
    }
  }
  function keepInView(item) {
    // scroll the chapter list (not the page) so that the current chapter shows
    var box = document.getElementById("chapters-box");
    var top = item.offsetTop;  // #chapters-box is positioned: offsets are inside it
    if (top < box.scrollTop) box.scrollTop = top - 8;
    else if (top + item.offsetHeight > box.scrollTop + box.clientHeight) {
      box.scrollTop = top + item.offsetHeight - box.clientHeight + 8;
    }
  }
  function tick() {
    update();
    if (!video.paused) requestAnimationFrame(tick);
  }
  video.addEventListener("play", function () { requestAnimationFrame(tick); });
  video.addEventListener("pause", update);
  video.addEventListener("seeked", update);
  video.addEventListener("ended", update);
  playButton.addEventListener("click", function () { toggle(); });
  document.getElementById("prev").addEventListener("click", function () { nextStep(-1); });
  document.getElementById("next").addEventListener("click", function () { nextStep(1); });
  seek.addEventListener("input", function () { video.currentTime = Number(seek.value); update(); });
  regions.addEventListener("click", function () { toggle(); });
  function toggle() {
    if (video.paused) {
      if (video.ended || video.currentTime >= data.duration - 0.05) video.currentTime = 0;
      video.play();
    } else video.pause();
  }
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === "ArrowRight") { event.preventDefault(); nextStep(1); }
    else if (event.key === "ArrowLeft") { event.preventDefault(); nextStep(-1); }
    else if (event.key === "Home") { event.preventDefault(); goToStep(0); }
    else if (event.key === "End") { event.preventDefault(); goToStep(data.steps.length - 1); }
    else if (event.key === " " || event.key === "Spacebar") {
      if (event.target && event.target.tagName === "INPUT") return;
      event.preventDefault();
      toggle();
    }
  });

  buildChapters();
  buildStrip();
  update();
})();
