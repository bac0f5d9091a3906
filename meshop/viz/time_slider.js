// meshop: the time slider of a series page. The vtk.js viewer above draws frame 0's scene;
// this script swaps in frame k's colours (and node positions) from the quantized frames below.
(function () {
  const FRAMES = __MESHOP_FRAMES__;
  const LEVELS = 65535;

  function words(b64) {  // base64 of little-endian uint16 -> Uint16Array
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    return new Uint16Array(bytes.buffer);
  }

  function bind() {  // vtk.js data each embedded actor updates, once the scene has loaded
    const rw = window.global && window.global.renderWindow;
    if (!rw) return null;
    const drawn = rw.getRenderers().flatMap((renderer) => renderer.getActors())
      .map((actor) => actor.getMapper() && actor.getMapper().getInputData())
      .filter((data) => data && data.getPoints && data.getPoints());
    const bound = [];
    for (const entry of FRAMES.actors) {
      const data = drawn.find((d) => d.getNumberOfPoints() === entry.n_points && !bound.some((b) => b.data === d)
        && (!entry.values || (d.getPointData().getArrayByName(entry.scalars)
                              && d.getPointData().getArrayByName(entry.scalars).getData().length === entry.n_points)));
      if (!data) return null;
      bound.push({ data, entry, values: entry.values && words(entry.values), points: entry.points && words(entry.points) });
    }
    return bound;
  }

  function useCamera(rw) {  // the camera fitted in Python (parallel, every frame in view)
    const c = FRAMES.camera;
    for (const renderer of rw.getRenderers()) {
      const camera = renderer.getActiveCamera();
      camera.setParallelProjection(true);
      camera.setParallelScale(c.scale);
      camera.setFocalPoint(...c.focal_point);
      camera.setPosition(...c.position);
      camera.setViewUp(...c.up);
      renderer.resetCameraClippingRange();
    }
  }

  function show(bound, k) {
    const n = FRAMES.times.length;
    const [lo, hi] = FRAMES.clim;
    for (const { data, entry, values, points } of bound) {
      const m = entry.n_points;
      if (values) {
        const array = data.getPointData().getArrayByName(entry.scalars);
        const target = array.getData();
        for (let i = 0; i < m; i++) target[i] = lo + (values[k * m + i] / LEVELS) * (hi - lo);
        array.modified();
      }
      if (points) {
        const [blo, bhi] = entry.box;
        const target = data.getPoints().getData();
        for (let i = 0; i < 3 * m; i++) {
          const axis = i % 3;
          target[i] = blo[axis] + (points[3 * k * m + i] / LEVELS) * (bhi[axis] - blo[axis]);
        }
        data.getPoints().modified();
      }
      data.modified();
    }
    window.global.renderWindow.render();
    const label = document.getElementById("meshop-time-label");
    label.textContent = `t = ${+FRAMES.times[k].toPrecision(4)}   frame ${FRAMES.indices[k]} of ${FRAMES.n_frames - 1}`
      + (n < FRAMES.n_frames ? `  (${n} of ${FRAMES.n_frames} frames kept)` : "");
  }

  function controls(bound) {
    const bar = document.createElement("div");
    bar.id = "meshop-time";
    bar.style.cssText = "position:fixed;top:0;left:0;right:120px;z-index:10;padding:8px 14px;display:flex;"
      + "gap:12px;align-items:center;background:rgba(255,255,255,0.9);font:14px sans-serif;color:#000";
    bar.innerHTML = '<button id="meshop-play" type="button">&#9654;</button>'
      + `<input id="meshop-slider" type="range" min="0" max="${FRAMES.times.length - 1}" value="0" step="1" style="flex:1">`
      + '<span id="meshop-time-label" style="white-space:pre;min-width:22em"></span>';
    document.body.appendChild(bar);
    const slider = document.getElementById("meshop-slider");
    slider.addEventListener("input", () => show(bound, Number(slider.value)));
    let timer = null;
    document.getElementById("meshop-play").addEventListener("click", (event) => {
      if (timer) { clearInterval(timer); timer = null; event.target.innerHTML = "&#9654;"; return; }
      event.target.innerHTML = "&#10074;&#10074;";
      timer = setInterval(() => {
        slider.value = (Number(slider.value) + 1) % FRAMES.times.length;
        slider.dispatchEvent(new Event("input"));
      }, 100);
    });
    const wanted = /frame=(\d+)/.exec(window.location.hash);
    slider.value = wanted ? Math.min(Number(wanted[1]), FRAMES.times.length - 1) : 0;
    slider.dispatchEvent(new Event("input"));  // what a drag does: draw the frame, label it
  }

  (function wait() {
    const bound = bind();
    if (bound) { useCamera(window.global.renderWindow); controls(bound); } else setTimeout(wait, 50);
  })();
})();
