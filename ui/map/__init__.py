"""The Map page's parts: the chart component and its panels."""
