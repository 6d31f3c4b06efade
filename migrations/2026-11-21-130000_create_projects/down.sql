DROP TABLE canvas_nodes;
DROP TABLE projects;
