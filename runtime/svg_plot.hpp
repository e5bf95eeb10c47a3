/// satemu plots: line charts as self-contained SVG text.
///
/// Sweeps and reports draw their figures with this instead of depending on
/// Python or gnuplot: axes with "nice" ticks (1, 2 or 5 x 10^k), tick
/// labels, axis labels, a title, one polyline with point markers per series
/// and a legend to the right of the plot area. The output is a complete SVG
/// 1.1 document with no external references.
#pragma once

#include <string>
#include <vector>

namespace satemu::runtime {

/// One line of a chart: points (x[i], y[i]), drawn in the order given.
struct plot_series {
  std::string label;
  std::vector<double> x, y;
};

/// A line chart.
struct line_plot {
  std::string title;
  std::string x_label;
  std::string y_label;
  std::vector<plot_series> series;
  /// Smallest step between x ticks (1 for whole numbers); 0: any.
  double x_min_step = 0;
  /// Size of the whole image [px].
  int width = 800, height = 480;
};

/// Axis ticks: multiples of a step of 1, 2 or 5 x 10^k, about `target` of
/// them, from the largest multiple <= lo to the smallest >= hi (so they
/// cover [lo, hi]), the step at least `min_step`. With lo == hi the range
/// is widened around the value (to [0, 1] for 0). Requires finite lo <= hi
/// and target >= 2.
std::vector<double> nice_ticks(double lo, double hi, int target = 6, double min_step = 0);

/// A tick value with as many decimals as `step` needs ("0.45", "1200").
std::string tick_label(double value, double step);

/// Escapes &, <, >, " and ' for SVG text and attributes.
std::string xml_escape(const std::string& text);

/// The chart as an SVG document. Series with no points are listed in the
/// legend only; non-finite points are skipped.
std::string render_svg(const line_plot& plot);

} // namespace satemu::runtime
