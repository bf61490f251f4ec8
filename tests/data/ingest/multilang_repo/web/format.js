'use strict';

/**
 * Formats a number of bytes as a human readable string, e.g. 1536 -> "1.5 KB".
 */
function formatBytes(bytes, decimals = 1) {
  if (bytes === 0) return '0 B';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  const i = Math.floor(Math.log(bytes) / Math.log(1024));
  return `${(bytes / Math.pow(1024, i)).toFixed(decimals)} ${units[i]}`;
}

// Debounce: call fn only after `wait` ms without another call.
const debounce = (fn, wait) => {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), wait);
  };
};

class EventBus {
  constructor() {
    this.handlers = new Map();
  }

  /** Registers `handler` for events named `name`. */
  on(name, handler) {
    if (!this.handlers.has(name)) this.handlers.set(name, []);
    this.handlers.get(name).push(handler);
  }
}

module.exports = { formatBytes, debounce, EventBus };
