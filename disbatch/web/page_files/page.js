'use strict';
(() => {
  const POLL_MS = 1000;
  const RETRY_MS = 2000;
  const MAX_FAILURES = 30;
  let view = null;
  let engineFrom = 0;
  let receivedAt = Date.now();
  let failures = 0;
  let lost = false;

  const byId = (id) => document.getElementById(id);
  const setText = (id, value) => {
    const element = byId(id);
    if (element && element.textContent !== value) element.textContent = value;
  };
  const known = (value) => value !== null && value !== undefined;
  const number = (value) => (known(value) ? String(value) : '\u2013');
  const pad = (value) => String(value).padStart(2, '0');
  const duration = (seconds) => {
    const whole = Math.max(0, Math.floor(seconds));
    return `${Math.floor(whole / 3600)}:${pad(Math.floor(whole / 60) % 60)}:${pad(whole % 60)}`;
  };
  const clock = (epoch) => {
    if (typeof epoch !== 'number') return '';
    const when = new Date(epoch * 1000);
    return `${pad(when.getHours())}:${pad(when.getMinutes())}:${pad(when.getSeconds())}`;
  };
  const fixed = (value, digits) => (typeof value === 'number' ? value.toFixed(digits) : number(value));
  const bytes = (value) => {
    if (typeof value !== 'number') return number(value);
    const units = ['B', 'KiB', 'MiB', 'GiB'];
    let size = value;
    let unit = 0;
    while (size >= 1024 && unit < units.length - 1) {
      size /= 1024;
      unit += 1;
    }
    return unit === 0 ? `${size} B` : `${size.toFixed(1)} ${units[unit]}`;
  };

  const fillTable = (id, rows, columns, emptyText, rowClass) => {
    const body = byId(id);
    const built = [];
    for (const row of rows) {
      const tr = document.createElement('tr');
      const extra = rowClass ? rowClass(row) : '';
      if (extra) tr.className = extra;
      for (const [value, className] of columns(row)) {
        const td = document.createElement('td');
        td.textContent = value;
        if (className) td.className = className;
        if (className && /command|snippet|state/.test(className)) td.title = value;
        if (className === 'memory') td.title = title(row.max_rss);
        tr.appendChild(td);
      }
      built.push(tr);
    }
    if (built.length === 0) {
      const tr = document.createElement('tr');
      tr.className = 'empty';
      const td = document.createElement('td');
      td.colSpan = body.parentElement.querySelectorAll('th').length;
      td.textContent = emptyText;
      tr.appendChild(td);
      built.push(tr);
    }
    body.replaceChildren(...built);
  };

  const title = (value) => (typeof value === 'number' ? `${value} bytes` : '');
  const taskColumns = (task) => [
    [number(task.task), ''],
    [number(task.line), ''],
    [number(task.host), 'text'],
    [number(task.return_code), task.return_code === 0 ? '' : 'bad'],
    [fixed(task.elapsed, 3), ''],
    [bytes(task.max_rss), 'memory'],
    [fixed(task.cpu, 2), ''],
    [clock(task.finish), ''],
    [known(task.command) ? String(task.command) : '', 'text command'],
  ];
  const failureColumns = (task) => {
    const columns = taskColumns(task);
    columns.splice(columns.length - 1, 0, [known(task.stderr) ? String(task.stderr) : '', 'text snippet']);
    return columns;
  };
  const rateText = (rate) => {
    if (typeof rate !== 'number') return '–';
    return rate >= 10 ? `${rate.toFixed(0)}/s` : rate >= 1 ? `${rate.toFixed(1)}/s` : `${(rate * 60).toFixed(1)}/min`;
  };
  const engineColumns = (engine) => [
    [number(engine.rank), ''],
    [number(engine.context), 'text'],
    [number(engine.host), 'text'],
    [number(engine.pid), ''],
    [number(engine.slots), ''],
    [number(engine.running), ''],
    [number(engine.free), ''],
    [number(engine.given), ''],
    [number(engine.finished), ''],
    [number(engine.failed), engine.failed ? 'bad' : ''],
    [fixed(engine.last_heard, 1), ''],
    [bytes(engine.max_rss), 'memory'],
    [fixed(engine.cpu, 1), ''],
    [known(engine.state) ? String(engine.state) + (engine.why ? `: ${engine.why}` : '') : '', 'text state'],
  ];
  const engineClass = (engine) => {
    if (engine.state === 'left' || engine.state === 'lost') return engine.state === 'lost' ? 'gone troubled' : 'gone';
    if (engine.state === 'silent') return 'troubled';
    return engine.retiring ? 'retiring' : '';
  };
  const usageColumns = (task) => [
    [number(task.task), ''],
    [number(task.line), ''],
    [number(task.host), 'text'],
    [bytes(task.max_rss), 'memory'],
    [fixed(task.cpu, 2), ''],
    [fixed(task.elapsed, 3), ''],
  ];

  const renderEngines = (v, words) => {
    const engines = Array.isArray(v.engines) ? v.engines : [];
    const count = typeof v.engine_count === 'number' ? v.engine_count : engines.length;
    const page = typeof v.engines_shown === 'number' && v.engines_shown > 0 ? v.engines_shown : 50;
    const local = engines.length >= count;  // every engine is here (disbatch report): page through them here
    engineFrom = Math.max(0, Math.min(engineFrom, Math.floor(Math.max(0, count - 1) / page) * page));
    const from = local ? engineFrom : (typeof v.engines_from === 'number' ? v.engines_from : 0);
    const shown = local ? engines.slice(from, from + page) : engines;
    fillTable('engines', shown, engineColumns, 'no engine yet', engineClass);
    setText('engine-range', count > shown.length
      ? `${from + 1}–${from + shown.length} of ${count}, troubled first, then the busiest`
      : count ? `${count}, troubled first, then the busiest` : '');
    setText('engine-note', known(words.attempts_note) ? String(words.attempts_note) : '');
    byId('engines-previous').disabled = from <= 0;
    byId('engines-next').disabled = from + shown.length >= count;
    byId('engines-pager').hidden = count <= page;
    const list = byId('contexts');
    const lines = Array.isArray(v.contexts) ? v.contexts : [];
    list.replaceChildren(...lines.map((line) => {
      const item = document.createElement('li');
      item.textContent = String(line);
      return item;
    }));
  };

  const turn = (step) => {
    const page = view && typeof view.engines_shown === 'number' && view.engines_shown > 0 ? view.engines_shown : 50;
    engineFrom = Math.max(0, engineFrom + step * page);
    history.replaceState(null, '', engineFrom > 0 ? `#engines=${engineFrom}` : '#');
    if (view && Array.isArray(view.engines) && view.engines.length >= (view.engine_count || 0)) render();
    else if (view && view.status !== 'finished' && !lost) poll(false);
  };

  const elapsed = () => {
    if (!view || typeof view.started !== 'number') return null;
    const at = typeof view.now === 'number' ? view.now : view.started;
    const ticking = !lost && view.status !== 'finished' ? (Date.now() - receivedAt) / 1000 : 0;
    return at - view.started + ticking;
  };

  const showEnded = () => {
    const ended = byId('ended');
    const finished = view && view.status === 'finished';
    if (!finished && !lost) {
      ended.hidden = true;
      return;
    }
    let message = 'run ended';
    if (view && known(view.exit_code)) message += ` \u2014 exit code ${view.exit_code}`;
    else if (lost && !finished) message += ' \u2014 the driver no longer answers';
    ended.textContent = message;
    ended.className = view && view.exit_code === 0 ? 'clean' : '';
    ended.hidden = false;
  };

  const render = () => {
    const v = view || {};
    setText('run', known(v.run) ? String(v.run) : '(starting)');
    const status = byId('status');
    const words = v.words && typeof v.words === 'object' ? v.words : {};
    setText('status', known(words.status) ? String(words.status) : 'Starting');
    status.className = `badge ${known(v.status) ? v.status : ''}`;
    const wall = v.walltime;
    setText('walltime', wall && typeof wall.left === 'number'
      ? `${duration(wall.left)} left in the allocation${wall.state === 'running' ? '' : ` (${wall.state})`}` +
        (wall.follow_up ? `, follow-up job ${wall.follow_up}` : '') : '');
    const counts = new Map((Array.isArray(words.counts) ? words.counts : []).map((count) => [count.key, count]));
    for (const card of document.querySelectorAll('.card.count')) {
      const count = counts.get(card.dataset.key);
      card.hidden = !count;
      const value = count ? count.value : null;
      setText(card.dataset.key, number(value));
      byId(card.dataset.key).classList.toggle('nonzero', typeof value === 'number' && value > 0);
    }
    setText('slots', number(v.slots));
    const seconds = elapsed();
    setText('elapsed', seconds === null ? '\u2013' : duration(seconds));
    setText('rate', rateText(v.rate));
    setText('eta', typeof v.eta === 'number' && v.status !== 'finished' ? duration(v.eta) : '\u2013');
    const done = (v.finished || 0) + (v.skipped || 0);
    const bar = byId('progress-bar');
    if (typeof v.total === 'number' && v.total > 0) {
      const percent = Math.min(100, (100 * done) / v.total);
      bar.style.width = `${percent.toFixed(1)}%`;
      setText('progress-label', `${done} of ${v.total} tasks done (${percent.toFixed(0)}%)`);
    } else {
      bar.style.width = '0';
      setText('progress-label', `${done} tasks done; the total is known once the whole task file is read`);
    }
    renderEngines(v, words);
    fillTable('recent', Array.isArray(v.recent) ? v.recent.slice().reverse() : [], taskColumns, 'none yet');
    fillTable('failures', Array.isArray(v.failures) ? v.failures.slice().reverse() : [], failureColumns,
      'no failed task');
    const usage = v.usage && typeof v.usage === 'object' ? v.usage : {};
    fillTable('biggest', Array.isArray(usage.biggest) ? usage.biggest : [], usageColumns, 'none measured yet');
    fillTable('slowest', Array.isArray(usage.slowest) ? usage.slowest : [], usageColumns, 'none measured yet');
    setText('updated', lost ? `last update ${clock(receivedAt / 1000)}` : `updated ${clock(receivedAt / 1000)}`);
    document.title = `disbatch ${known(v.run) ? v.run : ''}: ${number(v.finished)}` +
      `${typeof v.total === 'number' ? ' of ' + v.total : ''} finished, ${number(v.failed)} failed`;
    showEnded();
  };

  let polling = null;
  const poll = (again = true) => {
    fetch(engineFrom > 0 ? `status.json?engines=${engineFrom}` : 'status.json', { cache: 'no-store' })
      .then((response) => {
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        return response.json();
      })
      .then((fresh) => {
        view = fresh;
        receivedAt = Date.now();
        failures = 0;
        lost = false;
        render();
        if (again && view.status !== 'finished') {
          clearTimeout(polling);
          polling = setTimeout(poll, POLL_MS);
        }
      })
      .catch(() => {
        failures += 1;
        lost = true;
        render();
        if (again && failures < MAX_FAILURES) {
          clearTimeout(polling);
          polling = setTimeout(poll, RETRY_MS);
        }
      });
  };

  try {
    view = JSON.parse(byId('initial').textContent);
  } catch (error) {
    view = null;
  }
  const asked = /^#engines=(\d{1,9})$/.exec(location.hash);  // a page of engines kept in the address
  if (asked) engineFrom = Number(asked[1]);
  byId('engines-previous').addEventListener('click', () => turn(-1));
  byId('engines-next').addEventListener('click', () => turn(1));
  render();
  setInterval(() => {
    if (!lost && view && view.status !== 'finished') {
      const seconds = elapsed();
      if (seconds !== null) setText('elapsed', duration(seconds));
    }
  }, 1000);
  if (engineFrom > 0 && view && view.status !== 'finished') poll();
  else if (!view || view.status !== 'finished') polling = setTimeout(poll, POLL_MS);
})();
