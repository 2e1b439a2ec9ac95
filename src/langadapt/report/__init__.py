"""Results into tables, statistics, plots and the paper tables: long-format rows and per-task tables
(`aggregate`), groupings and significance tests (`stats`), figures (`plots`), the declarative paper tables
(`paper_tables`) and the realignment subsets table and scaling plot (`realign`)."""
