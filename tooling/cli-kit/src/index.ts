/**
 * What almora's command-line apps (the bench, `almora train`) share, and nothing heavier: no
 * backend, no dependency, so importing it costs nothing at start-up.
 *
 * @packageDocumentation
 */

/**
 * Progress on stderr: `start` a bar of so many steps, `tick` after each, `finish`
 * at the end. On a terminal one line redrawn with elapsed time and time left; elsewhere plain lines
 * now and then; silent when constructed with `quiet = true`.
 */
export { Progress, type ProgressStream } from './progress.js';

/**
 * A self-contained SVG line plot (no fonts or scripts fetched), linear or log on each axis, with
 * dashed series and labelled vertical markers: the plots of the bench's reports and of
 * `almora train`'s loss curve.
 */
export { linePlot, type PlotSpec, type Series, type Marker } from './line-plot.js';
