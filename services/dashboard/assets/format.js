// Numbers and times as the district reads them: percentages with one decimal, instants in
// Beijing time (the policy texts' time), whatever the browser's own zone.

import { lang, t } from './i18n.js';

const TZ = 'Asia/Shanghai';

/** `93.3%`, or a dash when there is nothing to divide. */
export function percent(value) {
  return value === null || value === undefined ? t('none') : `${value.toFixed(1)}%`;
}

/** A score or points with one decimal. */
export function decimal(value) {
  return value === null || value === undefined ? t('none') : value.toFixed(1);
}

export function integer(value) {
  return value === null || value === undefined ? t('none') : new Intl.NumberFormat(lang()).format(value);
}

/** An instant as `2026-09-01 09:00` in Beijing time. */
export function dateTime(iso) {
  if (!iso) return t('none');
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-CA', {
      timeZone: TZ, year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
    }).formatToParts(new Date(iso)).map((p) => [p.type, p.value]),
  );
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}`;
}

/** `YYYY-MM` of an instant in Beijing time. */
export function monthOf(date) {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-CA', { timeZone: TZ, year: 'numeric', month: '2-digit' })
      .formatToParts(date).map((p) => [p.type, p.value]),
  );
  return `${parts.year}-${parts.month}`;
}

/** How long ago an instant was, in words of the current language. */
export function ago(iso, now = Date.now()) {
  if (!iso) return '';
  const seconds = Math.round((new Date(iso).getTime() - now) / 1000);
  const rtf = new Intl.RelativeTimeFormat(lang(), { numeric: 'auto' });
  const units = [['day', 86400], ['hour', 3600], ['minute', 60]];
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size) return rtf.format(Math.round(seconds / size), unit);
  }
  return rtf.format(seconds, 'second');
}
