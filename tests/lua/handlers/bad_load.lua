error('refusing to load')
