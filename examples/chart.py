"""A chart from a data file: sales by month as a bar chart, and the total.

    python -m bot run examples/chart.py --file examples/sales.csv

The figure left open is shared as figure-1.png (in Slack, in the job's thread); a file
written under out/ would be too.
"""

import matplotlib.pyplot as plt
import pandas as pd

sales = pd.read_csv("sales.csv")
sales.plot(x="month", y="sales", kind="bar", legend=False, title="Sales by month")
plt.tight_layout()
sales.describe().to_csv("out/summary.csv")
print(f"total: {sales['sales'].sum()}")
